//go:build !linux || !cgo

package mirror

import (
	"context"
	"errors"
)

// run is empty where capture is not supported.
type run struct{}

func (r *run) pollKernelStats() {}

// Start fails: AF_PACKET capture needs Linux and cgo.
func (c *Capture) Start(context.Context) error {
	return errors.New("mirror: AF_PACKET capture needs Linux and a cgo build")
}

// Stop does nothing.
func (c *Capture) Stop(context.Context) error { return nil }
