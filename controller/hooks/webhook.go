package hooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// userAgent is the User-Agent of webhook requests.
const userAgent = "floodgate"

// maxDiscard is how much of an answer's body is read, beyond what is kept
// for the log, so that the connection can be reused.
const maxDiscard = 64 << 10

// webhookRunner POSTs events to a URL.
type webhookRunner struct {
	url     string
	headers http.Header
	timeout time.Duration
	retries int
	backoff time.Duration
	client  *http.Client
	// retried counts the attempts after the first (the hook's counter).
	retried *atomic.Uint64
}

// newClient returns the client of a webhook. It does not follow redirects:
// a redirected POST may become a GET, and a webhook that moved is a
// configuration to fix.
func newClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// deliver POSTs the event's JSON, retrying with exponential backoff after
// a network error or a 408, 429 or 5xx answer. Any other answer than 2xx
// is an error.
func (w *webhookRunner) deliver(ctx context.Context, it *item) error {
	wait := w.backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, it.body)
		if err == nil {
			return nil
		}
		if !retry || attempt > w.retries || ctx.Err() != nil {
			if attempt > 1 {
				return fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("attempt %d, cancelled before retrying: %w", attempt, err)
		}
		w.retried.Add(1)
		wait = min(2*wait, maxRetryBackoff)
	}
}

// post makes one attempt. It reports whether a failed attempt may be
// retried.
func (w *webhookRunner) post(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	for k, v := range w.headers {
		req.Header[k] = v
	}
	resp, err := w.client.Do(req) // the error names the URL without its password
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDiscard))
		return false, nil
	}
	head := &headBuffer{max: maxOutput}
	_, _ = io.Copy(head, io.LimitReader(resp.Body, maxOutput+maxDiscard))
	code := resp.StatusCode
	retry = code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
	return retry, &statusError{Code: code, Body: head.String()}
}

// statusError is a webhook's answer other than 2xx.
type statusError struct {
	// Code is the HTTP status code.
	Code int
	// Body is the start of the answer's body.
	Body string
}

func (e *statusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("status %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("status %d %s: %q", e.Code, http.StatusText(e.Code), e.Body)
}
