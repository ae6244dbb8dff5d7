package kafka

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
)

// ErrTopicName is returned by Topics.Validate for an empty or invalid topic name.
var ErrTopicName = errors.New("kafka: invalid topic name")

// Topics names every topic of the pipeline. The defaults are DefaultTopics; each can be
// overridden by a flag (topic.product-actions) or its environment variable
// (THREADLINE_TOPIC_PRODUCT_ACTIONS).
type Topics struct {
	PosthogRaw            string // raw PostHog events as captured or exported
	IntercomRaw           string // raw Intercom webhook notifications
	ProductActions        string // messages.ProductAction, key: session id
	ConversationEvents    string // messages.ConversationEvent, key: conversation id
	ConversationActions   string // messages.ConversationActions, key: conversation id
	NotesWritten          string // messages.NoteWritten, key: conversation id
	ConversationSummaries string // messages.ConversationSummary, key: conversation id
	IntercomEvents        string // Intercom data events from triggers, key: user
	DLQ                   string // messages.DeadLetter, key: the failed record's key
}

// DefaultTopics returns the default topic names.
func DefaultTopics() Topics {
	return Topics{
		PosthogRaw:            "posthog.events.raw",
		IntercomRaw:           "intercom.webhooks.raw",
		ProductActions:        "product.actions",
		ConversationEvents:    "conversation.events",
		ConversationActions:   "conversation.actions",
		NotesWritten:          "notes.written",
		ConversationSummaries: "conversation.summaries",
		IntercomEvents:        "intercom.events",
		DLQ:                   "threadline.dlq",
	}
}

// RegisterFlags registers the topic.* flags on fs, with the defaults of DefaultTopics.
func (t *Topics) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultTopics()
	for _, f := range t.fields(&d) {
		fs.StringVar(f.p, f.flag, *f.def, f.usage)
	}
}

// All returns every topic name, in a fixed order (for EnsureTopics).
func (t Topics) All() []string {
	return []string{t.PosthogRaw, t.IntercomRaw, t.ProductActions, t.ConversationEvents,
		t.ConversationActions, t.NotesWritten, t.ConversationSummaries, t.IntercomEvents, t.DLQ}
}

// topicNamePattern is what Kafka accepts as a topic name.
var topicNamePattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate checks that every name is a valid Kafka topic name.
func (t Topics) Validate() error {
	var errs []error
	d := DefaultTopics()
	for _, f := range t.fields(&d) {
		if !topicNamePattern.MatchString(*f.p) || *f.p == "." || *f.p == ".." {
			errs = append(errs, fmt.Errorf("%w: %s=%q", ErrTopicName, f.flag, *f.p))
		}
	}
	return errors.Join(errs...)
}

type topicField struct {
	p, def      *string
	flag, usage string
}

func (t *Topics) fields(d *Topics) []topicField {
	return []topicField{
		{&t.PosthogRaw, &d.PosthogRaw, "topic.posthog-raw", "topic of raw PostHog events"},
		{&t.IntercomRaw, &d.IntercomRaw, "topic.intercom-raw", "topic of raw Intercom webhook notifications"},
		{&t.ProductActions, &d.ProductActions, "topic.product-actions", "topic of normalised product actions (key: session id)"},
		{&t.ConversationEvents, &d.ConversationEvents, "topic.conversation-events", "topic of normalised conversation events (key: conversation id)"},
		{&t.ConversationActions, &d.ConversationActions, "topic.conversation-actions", "topic of actions linked to conversations (key: conversation id)"},
		{&t.NotesWritten, &d.NotesWritten, "topic.notes-written", "topic of notes written to Intercom (key: conversation id)"},
		{&t.ConversationSummaries, &d.ConversationSummaries, "topic.conversation-summaries", "topic of conversation summaries (key: conversation id)"},
		{&t.IntercomEvents, &d.IntercomEvents, "topic.intercom-events", "topic of Intercom data events from triggers (key: user)"},
		{&t.DLQ, &d.DLQ, "topic.dlq", "dead-letter topic"},
	}
}
