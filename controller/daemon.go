package controller

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// component is anything the daemon starts and stops.
type component interface {
	Start(ctx context.Context) error
	Stop() error
}

// Daemon is a running Floodgate: flow collector, detection engine,
// mitigation loop and BGP speaker.
type Daemon struct {
	log       hclog.Logger
	Speaker   *Speaker
	Mitigator *Mitigator
	Engine    *detect.Engine
	Collector *flow.Collector

	mu      sync.Mutex
	started []component
}

// NewDaemon builds every component from pol. It opens nothing.
func NewDaemon(pol *policies.Policy, logger hclog.Logger) (*Daemon, error) {
	d := &Daemon{log: logger}
	eng, err := detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	d.Engine = eng
	d.Speaker = NewSpeaker(pol.BGP, logger)
	d.Mitigator = NewMitigator(MitigatorConfig{}, pol, eng.Events(), d.Speaker, logger)
	var fc flow.Config
	for _, l := range pol.Listeners {
		fc.Listeners = append(fc.Listeners, flow.ListenerConfig{
			Name:            l.Name,
			Protocol:        flow.Protocol(l.Protocol),
			Listen:          l.Listen.String(),
			ReceiveBuffer:   l.ReceiveBuffer,
			QueueSize:       l.QueueSize,
			Workers:         l.Workers,
			DefaultSampling: l.DefaultSampling,
			Sampling:        l.Sampling,
		})
	}
	d.Collector, err = flow.New(fc, eng, logger)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	return d, nil
}

// Start starts the components in dependency order (speaker, mitigation,
// detection, sources) and unwinds those already started if one fails.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range []component{d.Speaker, d.Mitigator, d.Engine, d.Collector} {
		if err := c.Start(ctx); err != nil {
			d.stopLocked()
			return err
		}
		d.started = append(d.started, c)
	}
	d.log.Info("floodgate running")
	return nil
}

// Stop stops the components in reverse order: sources first, so that
// queues drain into detection, and the BGP speaker last.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopLocked()
}

func (d *Daemon) stopLocked() error {
	var first error
	for i := len(d.started) - 1; i >= 0; i-- {
		if err := d.started[i].Stop(); err != nil && first == nil {
			first = err
		}
	}
	d.started = nil
	return first
}
