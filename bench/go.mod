module github.com/streamguard/streamguard/bench

go 1.26.0

require github.com/streamguard/streamguard v0.0.0

require github.com/cenkalti/backoff/v4 v4.3.0 // indirect

replace github.com/streamguard/streamguard => ../
