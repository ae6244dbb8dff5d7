package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// TestCrashBetweenRedisWriteAndCommit kills the linker process (SIGKILL) after its Redis write
// and before its offset commit, then starts a fresh one in the same group on the same Redis.
//
// The kill comes at the linker's first produce to conversation.actions after a chosen point:
// the broker holds that produce until the process is dead, then drops it (the crash came before
// the output reached Kafka) or appends it (after: the fresh process repeats it). The point is
// either the link (the pre-conversation flush of a conversation event) or live actions of linked
// sessions. Either the crashing process committed nothing at all (a long commit interval), so
// the fresh one replays everything, or it had committed all it finished before the crash point,
// so the fresh one replays only from there.
//
// Whatever the case, every action of the journey (before the link, the flush, after the link)
// reaches conversation.actions, a repeat is an exact copy with the same action ids, and a reader
// that drops actions it has seen (the notewriter's rule) gets each action exactly once.
func TestCrashBetweenRedisWriteAndCommit(t *testing.T) {
	cases := []struct {
		name         string
		atFlush      bool // crash at the link's flush, else at live actions
		outputLanded bool // the held produce is appended before the fresh process starts
		committing   bool // the crashing process committed what it finished before the crash point
	}{
		{"flush_lost_with_the_crash_commits_kept", true, false, true},
		{"flush_written_before_the_crash_nothing_committed", true, true, false},
		{"live_actions_lost_with_the_crash_nothing_committed", false, false, false},
		{"live_actions_written_before_the_crash_commits_kept", false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const (
				users  = 3
				before = 4 // actions per user before the conversation opens
				after  = 4 // actions per user once it is open
			)
			cluster, brokers := kafkatest.Cluster(t)
			srv := redistest.Start(t)
			procs := newLinkerProcesses(t, brokers, srv.Addr, "THREADLINE_CONSUMER_SESSION_TIMEOUT=1s")
			crash := newCrashOnOutput(t, cluster, brokers, procs.topics.ConversationActions, tc.outputLanded, procs.kill)
			j := newJourney("crash-", procs.topics, users)
			for i := 0; i < users; i++ {
				j.expectPre(i, 0, before)
				j.expectLive(i, before, after)
			}

			commitInterval := "1h"
			if tc.committing {
				commitInterval = "100ms"
			}
			procs.start("THREADLINE_CONSUMER_COMMIT_INTERVAL=" + commitInterval)
			procs.produce(j.actionsOfAll(0, before)...)
			procs.waitConsumed(procs.topics.ProductActions, users*before)
			if !tc.atFlush {
				procs.produce(j.opensOfAll(before)...)
				kafkatest.Eventually(t, waitLong, func() bool { return procs.outputCount() == users },
					"the pre-conversation batches were not produced")
			}

			if tc.committing {
				procs.waitCommittedToEnd()
			}

			outputBefore := procs.outputCount()
			crash.arm()
			crashTopic := procs.topics.ProductActions
			if tc.atFlush {
				crashTopic = procs.topics.ConversationEvents
				procs.produce(j.opensOfAll(before)...)
			} else {
				procs.produce(j.actionsOfAll(before, after)...)
			}
			crash.waitKilled()
			if committed := procs.committed(crashTopic); offsetsEqual(committed, kafkatest.EndOffsets(t, brokers, crashTopic)) {
				t.Fatalf("the killed process committed %s to its end (%v): the crash came after the commit", crashTopic, committed)
			}
			if !tc.committing {
				for _, topic := range []string{procs.topics.ProductActions, procs.topics.ConversationEvents} {
					if committed := procs.committed(topic); len(committed) != 0 {
						t.Fatalf("the killed process committed %v on %s; it was to commit nothing", committed, topic)
					}
				}
			}
			landed := procs.outputCount() - outputBefore
			switch {
			case tc.outputLanded && landed == 0:
				t.Fatal("the produce held at the crash did not land")
			case !tc.outputLanded && landed != 0:
				t.Fatalf("%d records of the killed process landed; its produce was to be dropped", landed)
			}

			procs.start() // fresh process: same group, same Redis
			if tc.atFlush {
				procs.produce(j.actionsOfAll(before, after)...)
			}
			procs.waitCommittedToEnd()
			procs.stop()

			d := j.checkDelivery(t, procs.readOutput())
			if d.repeats < landed {
				t.Errorf("%d records repeated, want at least the %d the killed process produced before dying", d.repeats, landed)
			}
			t.Logf("%d records on conversation.actions, %d exact repeats (%d produced by the killed process after its Redis write)",
				d.messages, d.repeats, landed)
		})
	}
}

// crashOnOutput is a broker-side trap for one linker process: armed, it catches the first
// produce to the output topic, kills the process that sent it, and holds that produce (and any
// other the process still had in flight) until the process is gone; then it drops them, or lets
// the broker append them when land is set. Produces of other producers pass untouched.
type crashOnOutput struct {
	t       *testing.T
	cluster *kfake.Cluster
	topic   string
	topicID [16]byte
	land    bool
	kill    func() error

	armed   atomic.Bool
	mu      sync.Mutex
	victim  int64 // producer id of the killed process; -1 until the trap springs
	killed  chan struct{}
	killErr error
}

func newCrashOnOutput(t *testing.T, cluster *kfake.Cluster, brokers []string, topic string, land bool, kill func() error) *crashOnOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	details, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListTopics(ctx, topic)
	if err != nil || details[topic].Err != nil {
		t.Fatalf("topic id of %s: %v %v", topic, err, details[topic].Err)
	}
	c := &crashOnOutput{t: t, cluster: cluster, topic: topic, topicID: details[topic].ID, land: land, kill: kill,
		victim: -1, killed: make(chan struct{})}
	cluster.ControlKey(kmsg.Produce.Int16(), c.control)
	return c
}

// arm makes the next produce to the output topic the crash point.
func (c *crashOnOutput) arm() { c.armed.Store(true) }

// waitKilled waits until the trap has sprung and the process is dead.
func (c *crashOnOutput) waitKilled() {
	c.t.Helper()
	select {
	case <-c.killed:
	case <-time.After(waitLong):
		c.t.Fatal("the linker never produced to conversation.actions after the crash point")
	}
	if c.killErr != nil {
		c.t.Fatalf("kill the linker: %v", c.killErr)
	}
}

func (c *crashOnOutput) control(kr kmsg.Request) (kmsg.Response, error, bool) {
	pid, ok := c.outputProducer(kr.(*kmsg.ProduceRequest))
	if !ok {
		return nil, nil, false
	}
	c.mu.Lock()
	springs := c.victim < 0 && c.armed.Load()
	if springs {
		c.victim = pid
	}
	victim := c.victim
	c.mu.Unlock()
	if pid != victim {
		return nil, nil, false
	}
	if springs {
		c.cluster.SleepControl(func() {
			c.killErr = c.kill()
			close(c.killed)
		})
	} else {
		c.cluster.SleepControl(func() { <-c.killed })
	}
	if c.land {
		return nil, nil, false
	}
	c.cluster.KeepControl()
	return nil, errors.New("the producing linker was killed"), true
}

// outputProducer returns the producer id of the record batches req carries to the output topic.
func (c *crashOnOutput) outputProducer(req *kmsg.ProduceRequest) (int64, bool) {
	for _, rt := range req.Topics {
		if rt.Topic != c.topic && rt.TopicID != c.topicID {
			continue
		}
		for _, rp := range rt.Partitions {
			var batch kmsg.RecordBatch
			if err := batch.ReadFrom(rp.Records); err == nil {
				return batch.ProducerID, true
			}
		}
	}
	return 0, false
}
