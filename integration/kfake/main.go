// Command kfake runs an in-memory Kafka cluster (franz-go's pkg/kfake: the
// Kafka protocol with consumer groups and compaction) for the integration
// tests whose cluster must outlive a Floodgate process. It listens on one
// address, prints "kfake listening on ADDR" and runs until SIGINT or
// SIGTERM. It is a test harness, not part of Floodgate.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9092", "address to listen on (advertised as it is)")
	minSession := flag.Duration("min-session-timeout", time.Second, "the smallest consumer group session timeout accepted")
	var seeds []kfake.Opt
	flag.Func("topic", "a topic to create at start, name:partitions (repeatable)", func(s string) error {
		name, n, ok := strings.Cut(s, ":")
		p, err := strconv.Atoi(n)
		if !ok || err != nil || p < 1 {
			return fmt.Errorf("%q is not name:partitions", s)
		}
		seeds = append(seeds, kfake.SeedTopics(int32(p), name))
		return nil
	})
	flag.Parse()
	c, err := kfake.NewCluster(append(seeds,
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return net.Listen("tcp", *listen) }),
		kfake.GroupMinSessionTimeout(*minSession),
	)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	fmt.Println("kfake listening on", c.ListenAddrs()[0])
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	c.Close()
}
