package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Client talks to a daemon's API over its unix socket or TCP.
type Client struct {
	base  string
	token string
	http  *http.Client
	where string
}

// ErrNotRunning reports that no daemon answers at the address.
var ErrNotRunning = errors.New("floodgate is not running")

// NewClient returns a client for a unix socket path, or for an http(s)
// URL with a bearer token.
func NewClient(socketOrURL, token string) *Client {
	c := &Client{token: token, where: socketOrURL}
	if strings.HasPrefix(socketOrURL, "http://") || strings.HasPrefix(socketOrURL, "https://") {
		c.base = strings.TrimSuffix(socketOrURL, "/")
		c.http = &http.Client{Timeout: 10 * time.Second}
		return c
	}
	c.base = "http://floodgate"
	c.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketOrURL)
		},
	}}
	return c
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (nothing answers at %s)", ErrNotRunning, c.where)
		}
		return fmt.Errorf("api %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("api %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var ae APIError
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return fmt.Errorf("%s (%d)", ae.Error, resp.StatusCode)
		}
		return fmt.Errorf("api %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	return json.Unmarshal(b, out)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Attacks returns the active and recent attacks.
func (c *Client) Attacks(ctx context.Context) (Attacks, error) {
	var a Attacks
	return a, c.do(ctx, http.MethodGet, "/v1/attacks", nil, &a)
}

// Mitigations returns the active mitigations.
func (c *Client) Mitigations(ctx context.Context) (Mitigations, error) {
	var m Mitigations
	return m, c.do(ctx, http.MethodGet, "/v1/mitigations", nil, &m)
}

// Hosts returns the n busiest hosts by "pps", "bps" or "flows".
func (c *Client) Hosts(ctx context.Context, by, direction string, n int) (Hosts, error) {
	var h Hosts
	q := url.Values{"by": {by}, "direction": {direction}, "n": {fmt.Sprint(n)}}
	return h, c.do(ctx, http.MethodGet, "/v1/hosts?"+q.Encode(), nil, &h)
}

// Ban requests a manual mitigation.
func (c *Client) Ban(ctx context.Context, req BanRequest) (Mitigation, error) {
	var m Mitigation
	return m, c.do(ctx, http.MethodPost, "/v1/mitigations", req, &m)
}

// Unban withdraws by key, or every mitigation of a prefix.
func (c *Client) Unban(ctx context.Context, key, prefix string) ([]string, error) {
	q := url.Values{}
	if key != "" {
		q.Set("key", key)
	} else {
		q.Set("prefix", prefix)
	}
	var out map[string][]string
	err := c.do(ctx, http.MethodDelete, "/v1/mitigations?"+q.Encode(), nil, &out)
	return out["withdrawn"], err
}

// Reload asks the daemon to reload its configuration.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, nil)
}

// Raw fetches a path and returns the body, for --json output.
func (c *Client) Raw(ctx context.Context, path string) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.do(ctx, http.MethodGet, path, nil, &raw)
}
