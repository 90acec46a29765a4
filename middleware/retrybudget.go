package middleware

import "github.com/streamguard/streamguard/retry"

// retryPolicy returns the retry policy of the client stack.
func retryPolicy(cfg Config) retry.Policy { return cfg.Retry }
