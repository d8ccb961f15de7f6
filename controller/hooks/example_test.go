package hooks_test

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate-ddos/floodgate/controller/hooks"
)

func Example() {
	d, err := hooks.New(hooks.Config{
		Exec: []hooks.ExecConfig{{Name: "notify", Path: "/usr/local/bin/notify_about_attack.sh"}},
		Webhooks: []hooks.WebhookConfig{{
			Name:    "chat",
			URL:     "https://chat.example.net/hooks/ddos",
			Headers: map[string]string{"Authorization": "Bearer token"},
			Events:  []hooks.Kind{hooks.MitigationAnnounced, hooks.MitigationWithdrawn},
		}},
	}, hclog.New(&hclog.LoggerOptions{Name: "floodgate"}))
	if err != nil {
		return // the script does not exist here
	}
	prometheus.NewRegistry().MustRegister(d.Collector())
	if err := d.Start(context.Background()); err != nil {
		return
	}
	defer d.Stop(context.Background())
	d.Notify(hooks.Event{
		Kind:      hooks.MitigationAnnounced,
		Time:      time.Now(),
		IP:        "198.51.100.7",
		Direction: "incoming",
		PPS:       123456,
		Hostgroup: "acme",
		Details:   map[string]string{"kind": "rtbh"},
	})
}
