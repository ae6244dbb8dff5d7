package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
)

// playDemo plays the shared journey with fresh ids at four times its recorded speed, and opens a
// conversation for the user right after they are identified, so the actions before it arrive as
// the pre-conversation batch and the rest follow live.
func playDemo(ctx context.Context, brokers []string, fake *fakeintercom.Server, ingestURL string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	j, err := demo.Fresh(time.Now(), 4)
	if err != nil {
		return err
	}
	topic := kafka.DefaultTopics().PosthogRaw
	fmt.Printf("demo: playing the journey of %s (session %s)\n", j.UserID, j.SessionID)
	for i, ev := range j.Events {
		if wait := time.Until(ev.Time); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		rec := &kgo.Record{Topic: topic, Key: []byte(j.AnonID), Value: ev.Value}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("produce event %d: %w", i, err)
		}
		if i == demo.IdentifyIndex {
			conv := fake.CreateConversation(fakeintercom.ContactSpec{
				ExternalID: j.UserID, Email: j.Email, Name: "Demo User", Role: "user",
			}, "<p>I can't change my plan, the payment keeps failing.</p>", "https://app.acme.dev/checkout", nil)
			if err := fake.DeliverWebhook(ctx, ingestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
				return fmt.Errorf("deliver webhook: %w", err)
			}
			fmt.Printf("demo: the user opened conversation %s\n", conv.ID)
		}
	}
	fmt.Println("demo: journey played")
	return nil
}
