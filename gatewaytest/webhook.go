package gatewaytest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/streamguard/streamguard/webhook"
)

// deliver posts d.Body to the webhook, trying again on 500, 502, 503, 504
// and on no answer, up to MaxAttempts times or until the gateway closes.
func (a *asyncRoute) deliver(d *Delivery) {
	sig := a.sign(d.Body)
	for attempt := 1; attempt <= a.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(a.cfg.RetryDelay)
			select {
			case <-t.C:
			case <-a.ctx.Done():
				t.Stop()
				d.Err = context.Canceled // closed before the result was delivered
				return
			}
		}
		d.Attempts = attempt
		d.StatusCode, d.Err = a.post(d.Body, sig)
		if d.Err == nil && !retryDelivery(d.StatusCode) {
			return
		}
	}
}

func retryDelivery(status int) bool {
	switch status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// post makes one delivery attempt.
func (a *asyncRoute) post(body []byte, sig string) (int, error) {
	ctx, cancel := context.WithTimeout(a.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(AsyncSignatureHeader, sig)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswer))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sign returns the signature header for body: one v1 entry per secret, as
// webhook.Sign makes it.
func (a *asyncRoute) sign(body []byte) string {
	sigs := make([]string, 0, len(a.cfg.Secrets))
	for _, s := range a.cfg.Secrets {
		sigs = append(sigs, webhook.Sign(body, s))
	}
	return strings.Join(sigs, ",")
}
