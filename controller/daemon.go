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
	pol       *policies.Policy
	store     *Store
	Speaker   *Speaker
	Mitigator *Mitigator
	Engine    *detect.Engine
	Collector *flow.Collector

	mu      sync.Mutex
	started []component
}

// NewDaemon builds every component from pol. It opens nothing.
func NewDaemon(pol *policies.Policy, logger hclog.Logger) (*Daemon, error) {
	d := &Daemon{log: logger, pol: pol}
	eng, err := detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	d.Engine = eng
	d.Speaker = NewSpeaker(pol.BGP, logger)
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

// Start opens the state file and starts the components in dependency
// order (speaker, mitigation, detection, sources), unwinding those already
// started if one fails.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	store, err := OpenStore(d.pol.Mitigation.StateFile)
	if err != nil {
		return err
	}
	d.store = store
	d.Mitigator = NewMitigator(MitigatorConfig{}, d.pol, d.Engine.Events(), d.Speaker, store, d.log)
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
	if d.store != nil {
		if err := d.store.Close(); err != nil && first == nil {
			first = err
		}
		d.store = nil
	}
	return first
}
