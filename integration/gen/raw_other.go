//go:build !linux

package gen

import (
	"errors"
	"fmt"
)

// rawSocket stands for the AF_PACKET socket, which only Linux has.
type rawSocket struct{}

var errNoBuffer = errors.New("no buffer space")

func (s *rawSocket) isOpen() bool { return false }

func (s *rawSocket) open(ifname, _ string) error {
	return fmt.Errorf("raw frames on %s need Linux AF_PACKET sockets: %w", ifname, ErrInvalidEmitter)
}

func (s *rawSocket) send([]byte) error { return errNoBuffer }

func (s *rawSocket) close() error { return nil }
