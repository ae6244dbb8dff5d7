// Command devstack is `make run`: the embedded default stack on one machine. It starts a Kafka
// protocol broker (kfake, kept in a data directory), Redis (a redis-server process when one is on
// PATH, otherwise an embedded one), the fake Intercom with its page, the four Threadline binaries
// as processes with prefixed logs, and a demo source that plays the shared journey with fresh ids
// and opens a conversation. Ctrl-C stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/schemas"
)

type options struct {
	dataDir    string
	keepData   bool
	binDir     string
	pageAddr   string
	ingestAddr string
	kafkaPort  int
	threshold  int
	demo       bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	fs.StringVar(&o.dataDir, "data-dir", ".run", "where the broker and Redis keep their data")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the broker's data from the last run (the fake Intercom always starts empty, so old notes would be restored for conversations it no longer has)")
	fs.StringVar(&o.binDir, "bin-dir", "", "directory of the four binaries (default: next to this program)")
	fs.StringVar(&o.pageAddr, "page-addr", "127.0.0.1:8090", "address of the fake Intercom and its page")
	fs.StringVar(&o.ingestAddr, "ingest-addr", "127.0.0.1:8080", "address of ingest's capture endpoint and webhook receiver")
	fs.IntVar(&o.kafkaPort, "kafka-port", 0, "broker port (0: any free port)")
	fs.IntVar(&o.threshold, "summary-threshold", 20, "raw actions before a summary")
	fs.BoolVar(&o.demo, "demo", true, "play the demo journey")
	_ = fs.Parse(os.Args[1:])
	if err := run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

const (
	token        = "dev-intercom-token"
	adminID      = "7310045"
	clientSecret = "dev-client-secret"
)

func run(ctx context.Context, o options) error {
	if o.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.binDir = filepath.Dir(exe)
	}
	kafkaDir := filepath.Join(o.dataDir, "kafka")
	redisDir := filepath.Join(o.dataDir, "redis")
	if !o.keepData {
		// Each run starts as a new deployment: broker, Redis and the fake Intercom all empty.
		if err := os.RemoveAll(kafkaDir); err != nil {
			return err
		}
	}
	for _, d := range []string{kafkaDir, redisDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(o.kafkaPort), kfake.DataDir(kafkaDir), kfake.AllowAutoTopicCreation())
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer broker.Close()
	brokers := broker.ListenAddrs()

	redisAddr, stopRedis, err := startRedis(redisDir)
	if err != nil {
		return err
	}
	defer stopRedis()

	fake := fakeintercom.New(fakeintercom.Options{Token: token, AdminID: adminID, ClientSecret: clientSecret})
	pageLn, err := net.Listen("tcp", o.pageAddr)
	if err != nil {
		return fmt.Errorf("fake Intercom: %w", err)
	}
	page := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = page.Serve(pageLn) }()
	defer page.Close()

	rules, err := writeTriggerRules(o.dataDir)
	if err != nil {
		return err
	}
	admins, err := stack.AdminAddrs()
	if err != nil {
		return err
	}
	st := stack.New(o.binDir, []string{
		"THREADLINE_KAFKA_BROKERS=" + brokers[0],
		"THREADLINE_KAFKA_TOPIC_PARTITIONS=3",
		"THREADLINE_REDIS_ADDRS=" + redisAddr,
		"THREADLINE_INTERCOM_API_BASE=http://" + pageLn.Addr().String(),
		"THREADLINE_INTERCOM_TOKEN=" + token,
		"THREADLINE_INTERCOM_ADMIN_ID=" + adminID,
		"THREADLINE_INTERCOM_CLIENT_SECRET=" + clientSecret,
		"THREADLINE_HTTP_ADDR=" + o.ingestAddr,
		"THREADLINE_SUMMARY_THRESHOLD=" + fmt.Sprint(o.threshold),
		"THREADLINE_LOG_FORMAT=console",
		"THREADLINE_TRIGGERS_FILE=" + rules,
	}, os.Stdout)
	for _, s := range stack.Services {
		if _, err := st.Start(s, "THREADLINE_ADMIN_ADDR="+admins[s]); err != nil {
			_ = st.StopAll(5 * time.Second)
			return err
		}
	}
	defer func() { _ = st.StopAll(10 * time.Second) }()

	fmt.Printf("\n  Threadline dev stack\n  fake Intercom page:  http://%s/\n  capture + webhooks:  http://%s/\n  broker: %s  redis: %s\n\n",
		pageLn.Addr(), o.ingestAddr, brokers[0], redisAddr)

	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, s := range stack.Services {
		if err := stack.WaitReady(readyCtx, admins[s]); err != nil {
			return err
		}
	}
	if o.demo {
		go func() {
			if err := playDemo(ctx, brokers, fake, "http://"+o.ingestAddr); err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "devstack: demo:", err)
			}
		}()
	}
	<-ctx.Done()
	fmt.Println("\nstopping…")
	return nil
}

// writeTriggerRules puts the example rules that fire on the demo journey in the data directory.
func writeTriggerRules(dir string) (string, error) {
	examples, err := schemas.TriggersExamples()
	if err != nil {
		return "", err
	}
	for _, ex := range examples {
		if ex.Name == "journey.yaml" {
			path, err := filepath.Abs(filepath.Join(dir, "triggers.yaml"))
			if err != nil {
				return "", err
			}
			return path, os.WriteFile(path, ex.Data, 0o644)
		}
	}
	return "", errors.New("devstack: the journey's trigger rules are missing")
}

func startRedis(dir string) (string, func(), error) {
	srv, err := redistest.StartProcess(dir)
	if err == nil {
		return srv.Addr, srv.Stop, nil
	}
	fmt.Println("devstack: no redis-server on PATH; using the embedded Redis")
	m, err := miniredis.Run()
	if err != nil {
		return "", nil, fmt.Errorf("embedded redis: %w", err)
	}
	return m.Addr(), m.Close, nil
}
