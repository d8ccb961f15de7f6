package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// clientLoop is a Kafka client and the goroutine that reads with it:
// start opens the client and runs the goroutine; stop ends the goroutine,
// waits for it, then closes the client (which commits the offsets read
// and leaves a consumer group).
type clientLoop struct {
	mu     sync.Mutex
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *clientLoop) start(what string, opts []kgo.Opt, run func(ctx context.Context, cl *kgo.Client)) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.mu.Lock()
	c.cl, c.cancel, c.done = cl, cancel, done
	c.mu.Unlock()
	go func() {
		defer close(done)
		run(ctx, cl)
	}()
	return nil
}

func (c *clientLoop) stop(ctx context.Context, what string) error {
	c.mu.Lock()
	cl, cancel, done := c.cl, c.cancel, c.done
	c.cl = nil
	c.mu.Unlock()
	if cl == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		cl.Close()
		return fmt.Errorf("%s: stop: %w", what, ctx.Err())
	}
	cl.Close()
	return nil
}

// client is the running client, nil when stopped.
func (c *clientLoop) client() *kgo.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cl
}
