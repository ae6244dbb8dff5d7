package main

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/threadline/threadline/pkg/messages"
)

// sessionsOnOtherStripes returns two sessions whose stripes differ.
func sessionsOnOtherStripes(o *sessionOrder) (string, string) {
	a := "session-a"
	sa := o.stripesOf(1, func(int) string { return a })[0]
	for i := 0; ; i++ {
		b := fmt.Sprintf("session-b%d", i)
		if o.stripesOf(1, func(int) string { return b })[0] != sa {
			return a, b
		}
	}
}

func stripeOf(o *sessionOrder, session string) int {
	return o.stripesOf(1, func(int) string { return session })[0]
}

// TestLinkHoldExcludesOnlyItsSessions: a link step's hold keeps batches of its session out and
// lets batches of other sessions in; a batch in flight keeps the link step of its sessions out.
func TestLinkHoldExcludesOnlyItsSessions(t *testing.T) {
	o := newSessionOrder()
	a, b := sessionsOnOtherStripes(o)
	sa, sb := stripeOf(o, a), stripeOf(o, b)

	held := o.linking(messages.ConversationEvent{Type: messages.ConvCreated})
	held.hold([]string{a})
	if o.stripes[sa].TryRLock() {
		t.Fatal("a batch of the held session could start")
	}
	if !o.stripes[sb].TryRLock() {
		t.Fatal("a batch of another session could not start")
	}
	o.stripes[sb].RUnlock()
	held.release()
	if !o.stripes[sa].TryLock() {
		t.Fatal("the session stayed held after release")
	}
	o.stripes[sa].Unlock()

	release := o.routing([]messages.ProductAction{
		{Action: messages.Action{SessionID: a}}, {Action: messages.Action{SessionID: a}},
	})
	if o.stripes[sa].TryLock() {
		t.Fatal("a link step could start while a batch of its session was in flight")
	}
	if !o.stripes[sb].TryLock() {
		t.Fatal("a link step of another session could not start")
	}
	o.stripes[sb].Unlock()
	release()
	if !o.stripes[sa].TryLock() {
		t.Fatal("the batch's session stayed held after release")
	}
	o.stripes[sa].Unlock()
}

// TestMergeHoldsEverySession: a contact merge may link sessions of several conversations one
// after the other, so it holds every stripe from its first link step on.
func TestMergeHoldsEverySession(t *testing.T) {
	o := newSessionOrder()
	a, b := sessionsOnOtherStripes(o)
	held := o.linking(messages.ConversationEvent{Type: messages.ConvContactMerged})
	held.hold([]string{a})
	held.hold([]string{b})
	for i := range o.stripes {
		if o.stripes[i].TryRLock() {
			t.Fatalf("stripe %d not held during a merge", i)
		}
	}
	held.release()
	for i := range o.stripes {
		if !o.stripes[i].TryLock() {
			t.Fatalf("stripe %d still held after the merge", i)
		}
		o.stripes[i].Unlock()
	}
}

// TestRoutedActionIsProductActionWithRawProperties guards the linker's lighter decoding: a field
// added to messages.ProductAction must be added to routedAction too (properties stay encoded).
func TestRoutedActionIsProductActionWithRawProperties(t *testing.T) {
	full, light := reflect.TypeFor[messages.ProductAction](), reflect.TypeFor[routedAction]()
	var want []string
	for f := range full.Fields() {
		typ := f.Type.String()
		if f.Name == "Properties" {
			typ = "json.RawMessage"
		}
		want = append(want, f.Name+" "+typ+" "+string(f.Tag))
	}
	var got []string
	for f := range light.Fields() {
		got = append(got, f.Name+" "+f.Type.String()+" "+string(f.Tag))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("routedAction fields\n %q\nwant (messages.ProductAction with raw properties)\n %q", got, want)
	}
}
