package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate-ddos/floodgate/cluster"
	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/lab"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

// benchClusterHCL is a node of the throughput benchmark: %s are the
// API socket, the brokers, the node's name and its roles.
const benchClusterHCL = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
api { socket = "%s" }
kafka {
  brokers         = ["%s"]
  node            = "%s"
  roles           = [%s]
  session_timeout = "6s"
  flow_topic { replication = 1 }
  mitigation_topic { replication = 1 }
}
hostgroup "customers" {
  prefixes = ["10.0.0.0/8"]
  threshold "incoming" { pps = "1Gpps" }
}
`

// BenchmarkClusterThroughput measures records per second from a
// collector (a Publisher in the benchmark's process) through a kfake
// broker (in the same process) to 1, 2 and 3 detector processes of the
// floodgate binary, each counting with its detection engine: b.N records
// in batches of 512 over 4,096 hosts, timed until the detectors have
// counted them all. It runs with FLOODGATE_BENCH_CLUSTER=1 and a fixed
// -benchtime (make bench: 2000000x), as each run starts the processes.
func BenchmarkClusterThroughput(b *testing.B) {
	if os.Getenv("FLOODGATE_BENCH_CLUSTER") != "1" {
		b.Skip("set FLOODGATE_BENCH_CLUSTER=1 and -benchtime=2000000x (make bench)")
	}
	bin := lab.BuildFloodgate(b)
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("detectors=%d", n), func(b *testing.B) { benchCluster(b, bin, n) })
	}
}

func benchCluster(b *testing.B, bin string, detectors int) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1)) // the first node creates the topics
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()[0]
	var apis []*controller.Client
	for i := range detectors {
		dir := b.TempDir()
		sock := filepath.Join(dir, "api.sock")
		fg := lab.StartFloodgate(b, bin, fmt.Sprintf(benchClusterHCL, sock, brokers, fmt.Sprint("d", i), `"detector"`))
		apis = append(apis, controller.NewClient(sock, ""))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := fg.WaitLog(ctx, "flow partitions assigned"); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	time.Sleep(7 * time.Second) // the group settles on every member
	pol, err := policies.Parse([]string{"c.hcl"}, map[string][]byte{"c.hcl": []byte(fmt.Sprintf(benchClusterHCL,
		filepath.Join(b.TempDir(), "api.sock"), brokers, "c", `"collector"`))})
	if err != nil {
		b.Fatal(err)
	}
	pub, err := cluster.NewPublisher(pol, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	if err := pub.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer pub.Stop(context.Background())
	counted := func() uint64 {
		var n uint64
		for _, a := range apis {
			st, err := a.Status(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			n += st.Detection.Records
		}
		return n
	}
	base := counted()
	batch := make([]sources.Record, 512)
	now := time.Now().UnixNano()
	for i := range batch {
		h := uint32(i*8) % 4096
		batch[i] = sources.Record{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: netip.AddrFrom4([4]byte{10, 0, byte(h >> 8), byte(h)}),
			SrcPort: 123, DstPort: uint16(1024 + i), Proto: 17, Packets: 10, Bytes: 4680, Length: 468, Sampling: 1, Start: now, End: now}
	}
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		k := min(len(batch), b.N-sent)
		pub.Ingest(batch[:k])
		sent += k
		if st := pub.Stats(); st.Records-st.Acked-st.Dropped > 200_000 {
			time.Sleep(time.Millisecond) // a collector's pace: never more than the buffer holds
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for counted()-base < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("counted %d of %d records; publisher %+v", counted()-base, b.N, pub.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	if st := pub.Stats(); st.Dropped > 0 {
		b.Fatalf("%d records dropped", st.Dropped)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}
