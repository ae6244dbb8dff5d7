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

// playDemo plays the shared journey with fresh ids at five times its recorded speed, and opens a
// conversation for the user right after they are identified, so the actions before it arrive as
// the pre-conversation note and the rest follow live. A little later the user goes through the
// checkout again, which takes the conversation past the summary threshold: the summary is posted
// and the raw notes it replaces are redacted.
func playDemo(ctx context.Context, brokers []string, fake *fakeintercom.Server, ingestURL string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	const speed = 5
	j, err := demo.Fresh(time.Now(), speed)
	if err != nil {
		return err
	}
	fmt.Printf("demo: playing the journey of %s (session %s)\n", j.UserID, j.SessionID)
	if err := play(ctx, cl, j, func(i int) error {
		if i != demo.IdentifyIndex {
			return nil
		}
		conv := fake.CreateConversation(fakeintercom.ContactSpec{
			ExternalID: j.UserID, Email: j.Email, Name: "Demo User", Role: "user",
		}, "<p>I can't change my plan, the payment keeps failing.</p>", "https://app.acme.dev/checkout", nil)
		if err := fake.DeliverWebhook(ctx, ingestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
			return fmt.Errorf("deliver webhook: %w", err)
		}
		fmt.Printf("demo: the user opened conversation %s\n", conv.ID)
		return nil
	}); err != nil {
		return err
	}
	again, err := demo.Again(j, time.Now().Add(20*time.Second), speed)
	if err != nil {
		return err
	}
	fmt.Println("demo: journey played; in 20 s the user tries the checkout again")
	if err := play(ctx, cl, again, func(int) error { return nil }); err != nil {
		return err
	}
	fmt.Println("demo: second pass played; the summary replaces the raw notes")
	return nil
}

// play produces the journey's events to the raw topic at their times, calling after(i) after each.
func play(ctx context.Context, cl *kgo.Client, j demo.Journey, after func(i int) error) error {
	topic := kafka.DefaultTopics().PosthogRaw
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
		if err := after(i); err != nil {
			return err
		}
	}
	return nil
}
