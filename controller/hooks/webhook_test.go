package hooks

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWebhook(t *testing.T) {
	ev := Event{Kind: MitigationAnnounced, Time: eventTime, IP: "198.51.100.7", Direction: "incoming", PPS: 2e6, Hostgroup: "acme",
		Details: map[string]string{"kind": "flowspec"}}
	// cmpCounts compares the outcome counters of HookStats.
	cmpCounts := cmp.Transformer("counts", func(s HookStats) [3]uint64 { return [3]uint64{s.Sent, s.Failed, s.Retries} })
	const wantBody = `{"kind":"mitigation_announced","time":"2026-11-24T17:00:00.0000005Z","ip":"198.51.100.7","direction":"incoming","pps":2000000,"hostgroup":"acme","details":{"kind":"flowspec"}}`
	for _, tc := range []struct {
		name     string
		statuses []int
		retries  int
		timeout  time.Duration
		want     HookStats // Sent, Failed and Retries
		wantLog  string    // in the failure line
	}{
		{name: "200", statuses: []int{200}, want: HookStats{Sent: 1}},
		{name: "204", statuses: []int{204}, want: HookStats{Sent: 1}},
		{name: "503 twice then 200", statuses: []int{503, 503, 200}, want: HookStats{Sent: 1, Retries: 2}},
		{name: "429 is retried", statuses: []int{429, 200}, want: HookStats{Sent: 1, Retries: 1}},
		{name: "400 is not retried", statuses: []int{400}, want: HookStats{Failed: 1}, wantLog: "status 400 Bad Request: \\\"answer 400\\\""},
		{name: "500 until the retries run out", statuses: []int{500}, retries: 2, want: HookStats{Failed: 1, Retries: 2}, wantLog: "attempt 3: status 500"},
		{name: "no retries", statuses: []int{503}, retries: -1, want: HookStats{Failed: 1}},
		{name: "redirect is not followed", statuses: []int{302, 200}, want: HookStats{Failed: 1}, wantLog: "status 302"},
		{name: "timeout", statuses: []int{0}, retries: -1, timeout: 100 * time.Millisecond, want: HookStats{Failed: 1}, wantLog: "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.statuses...)
			logger, logs := testLogger()
			d := start(t, Config{Webhooks: []WebhookConfig{{
				Name:         "hook",
				URL:          srv.URL + "/notify",
				Headers:      map[string]string{"x-token": "secret"},
				Timeout:      tc.timeout,
				Retries:      tc.retries,
				RetryBackoff: 10 * time.Millisecond,
			}}}, logger)
			d.Notify(ev)
			got := waitDone(t, d, 0, 1)
			if diff := cmp.Diff(got, tc.want, cmpCounts); diff != "" {
				t.Errorf("stats (-got +want):\n%s", diff)
			}
			reqs := srv.requests()
			if n := tc.want.Retries + 1; uint64(len(reqs)) != n {
				t.Errorf("server received %d requests, want %d", len(reqs), n)
			}
			want := request{Method: "POST", Path: "/notify", ContentType: "application/json", UserAgent: "floodgate", Token: "secret", Body: wantBody}
			for i, r := range reqs {
				if diff := cmp.Diff(r, want); diff != "" {
					t.Errorf("request %d (-got +want):\n%s", i, diff)
				}
			}
			failed := logs.lines("hook failed")
			if (got.Failed == 1) != (len(failed) == 1) {
				t.Fatalf("log has %d failure lines:\n%s", len(failed), logs)
			}
			if tc.wantLog != "" && !strings.Contains(failed[0], tc.wantLog) {
				t.Errorf("failure line %q does not contain %q", failed[0], tc.wantLog)
			}
		})
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	logger, logs := testLogger()
	d := start(t, Config{Webhooks: []WebhookConfig{{
		URL: closedURL(t), Retries: 1, RetryBackoff: 10 * time.Millisecond,
	}}}, logger)
	d.Notify(Event{Kind: AttackStarted})
	s := waitDone(t, d, 0, 1)
	if s.Failed != 1 || s.Retries != 1 {
		t.Errorf("stats %+v, want 1 failed after 1 retry", s)
	}
	if l := logs.lines("hook failed"); len(l) != 1 || !strings.Contains(l[0], "connection refused") {
		t.Errorf("failure lines %q", l)
	}
}

func TestWebhookURLPasswordNotLogged(t *testing.T) {
	logger, logs := testLogger()
	u := strings.Replace(closedURL(t), "http://", "http://user:hunter2@", 1)
	d := start(t, Config{Webhooks: []WebhookConfig{{URL: u, Retries: -1}}}, logger)
	d.Notify(Event{Kind: AttackStarted})
	waitDone(t, d, 0, 1)
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("the log shows the password:\n%s", logs)
	}
}
