package linkstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// CheckEvent reports whether Apply can handle ev; an error wraps ErrInvalidInput.
func CheckEvent(ev messages.ConversationEvent) error {
	if ev.EventID == "" {
		return fmt.Errorf("%w: conversation event without event_id", ErrInvalidInput)
	}
	switch ev.Type {
	case messages.ConvCreated, messages.ConvReplied, messages.ConvOpened, messages.ConvClosed,
		messages.ConvContactAttached, messages.ConvContactDetached, messages.ConvDeleted:
		if ev.ConversationID == "" {
			return fmt.Errorf("%w: %s event %s without conversation_id", ErrInvalidInput, ev.Type, ev.EventID)
		}
	case messages.ConvContactMerged:
		if ev.ContactID == "" || ev.MergedFromID == "" {
			return fmt.Errorf("%w: contact_merged event %s needs contact_id and merged_from_id", ErrInvalidInput, ev.EventID)
		}
	default:
		return fmt.Errorf("%w: event %s of unknown type %q", ErrInvalidInput, ev.EventID, ev.Type)
	}
	return nil
}

// linksSessions reports whether an event of type typ looks for a session to link.
func linksSessions(typ string) bool {
	switch typ {
	case messages.ConvCreated, messages.ConvReplied, messages.ConvOpened,
		messages.ConvContactAttached, messages.ConvContactMerged:
		return true
	}
	return false
}

// plan is what an event does to sessions, fixed the first time the event is applied so that a
// repeat touches the same sessions and returns the same output.
type plan struct {
	Sessions []planSession `json:"s"`
}

type planSession struct {
	ID      string `json:"id"`
	Flush   bool   `json:"f,omitempty"` // link and flush the buffer; otherwise only update the link
	Detach  bool   `json:"d,omitempty"` // the session's contact left the conversation
	Contact string `json:"k,omitempty"` // the contact the session belongs to, when known
	Via     string `json:"v,omitempty"` // how a new link was found: hint, external_id, email, identity
}

// Apply handles one conversation event: it updates the conversation, links the session found by
// the session hint, else the external id, else the email (or keeps the conversation pending for
// those identities), propagates state changes (activity, close, reopen, delete, detach) to the
// linked sessions, and returns what to produce: the pre-conversation batches flushed from the
// buffers of sessions it linked or reopened. Applying the same event again returns the same output.
func (s *Store) Apply(ctx context.Context, ev messages.ConversationEvent) ([]messages.ConversationActions, error) {
	return s.ApplyHeld(ctx, ev, nil)
}

// ApplyHeld is Apply that calls hold, when not nil, with the sessions of a conversation's link
// step just before that step runs, which is the first moment a flushed batch exists and a live
// action of those sessions can be forwarded. A caller that holds those sessions until it has
// produced the output (and holds the sessions of a RouteBatch until it has produced that output)
// keeps a flushed batch ahead of the live actions of its session. hold is called at most once
// per conversation the event applies to, so more than once only for a contact merge.
func (s *Store) ApplyHeld(ctx context.Context, ev messages.ConversationEvent, hold func(sessions []string)) ([]messages.ConversationActions, error) {
	if err := CheckEvent(ev); err != nil {
		return nil, fmt.Errorf("linkstore: apply: %w", err)
	}
	now := s.now()
	at := eventMillis(ev.OccurredAt, now)
	if ev.Type == messages.ConvContactMerged {
		return s.applyMerge(ctx, ev, at, now, hold)
	}
	return s.applyConversation(ctx, ev.ConversationID, ev, at, now, hold)
}

// applyMerge applies a contact merge to every conversation of the contact merged away (and to
// the event's conversation, if it names one): they gain the surviving contact's identities.
func (s *Store) applyMerge(ctx context.Context, ev messages.ConversationEvent, at int64, now time.Time,
	hold func([]string)) ([]messages.ConversationActions, error) {
	from, to := keysOfContact(ev.MergedFromID), keysOfContact(ev.ContactID)
	convs, err := s.rdb.SMembers(ctx, from.convs).Result()
	if err != nil {
		s.redisFailed("merge")
		return nil, fmt.Errorf("linkstore: merge %s: conversations of %s: %w", ev.EventID, ev.MergedFromID, err)
	}
	if ev.ConversationID != "" && !contains(convs, ev.ConversationID) {
		convs = append(convs, ev.ConversationID)
	}
	slices.Sort(convs)
	body, err := json.Marshal(convs)
	if err != nil {
		return nil, fmt.Errorf("linkstore: merge %s: encode: %w", ev.EventID, err)
	}
	call := &scriptCall{
		script: s.scripts.setOnce,
		keys:   []string{to.event(ev.EventID)},
		args:   []any{body, s.cfg.SessionTTL.Milliseconds()},
	}
	if err := s.run(ctx, "merge", []*scriptCall{call}); err != nil {
		return nil, err
	}
	stored, err := call.cmd.Text()
	if err == nil {
		err = json.Unmarshal([]byte(stored), &convs)
	}
	if err != nil {
		return nil, fmt.Errorf("linkstore: merge %s: stored conversations: %w", ev.EventID, err)
	}
	var out []messages.ConversationActions
	for _, c := range convs {
		got, err := s.applyConversation(ctx, c, ev, at, now, hold)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// applyConversation applies ev to conversation conv. Each step is idempotent per event id: the
// conversation record changes once, the plan is stored once, each link step stores its flush.
func (s *Store) applyConversation(ctx context.Context, conv string, ev messages.ConversationEvent, at int64, now time.Time,
	hold func([]string)) ([]messages.ConversationActions, error) {
	nowMs := now.UnixMilli()
	ttlMs := s.cfg.SessionTTL.Milliseconds()
	ck := keysOfConversation(conv)
	evIDs := eventIdentities(ev)

	// 1. The conversation record.
	args := []any{ev.Type, ev.WorkspaceID, at, nowMs, ttlMs, len(evIDs)}
	for _, k := range evIDs {
		args = append(args, k)
	}
	convCall := &scriptCall{
		script: s.scripts.convApply,
		keys:   []string{ck.record, ck.sessions, ck.ids, ck.event(ev.EventID)},
		args:   args,
	}
	if err := s.run(ctx, "conversation", []*scriptCall{convCall}); err != nil {
		return nil, err
	}
	reply, err := convCall.cmd.Slice()
	if err != nil || len(reply) != 5 {
		return nil, fmt.Errorf("linkstore: conversation %s: unexpected reply (%d items): %v", conv, len(reply), err)
	}
	snap, _ := reply[0].(string)
	planJSON, _ := reply[1].(string)
	flatSessions, err := stringList(reply[2])
	if err != nil {
		return nil, fmt.Errorf("linkstore: conversation %s: sessions: %w", conv, err)
	}
	convIDs, err := stringList(reply[3])
	if err != nil {
		return nil, fmt.Errorf("linkstore: conversation %s: identities: %w", conv, err)
	}
	var entry entryHead
	if err := json.Unmarshal([]byte(snap), &entry); err != nil {
		return nil, fmt.Errorf("linkstore: conversation %s: entry %q: %w", conv, snap, err)
	}

	// 2. The plan, computed once.
	if planJSON == "" {
		p, err := s.makePlan(ctx, conv, ev, snap, entry, flatSessions, convIDs, evIDs, nowMs)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("linkstore: conversation %s: encode plan: %w", conv, err)
		}
		planCall := &scriptCall{
			script: s.scripts.convPlan,
			keys:   []string{ck.event(ev.EventID)},
			args:   []any{body, ttlMs},
		}
		if err := s.run(ctx, "plan", []*scriptCall{planCall}); err != nil {
			return nil, err
		}
		if planJSON, err = planCall.cmd.Text(); err != nil {
			return nil, fmt.Errorf("linkstore: conversation %s: stored plan: %w", conv, err)
		}
	}
	var p plan
	if err := json.Unmarshal([]byte(planJSON), &p); err != nil {
		return nil, fmt.Errorf("linkstore: conversation %s: plan %q: %w", conv, planJSON, err)
	}

	// 3. Link (and flush) each session of the plan.
	if hold != nil && len(p.Sessions) > 0 {
		ids := make([]string, len(p.Sessions))
		for n, ps := range p.Sessions {
			ids[n] = ps.ID
		}
		hold(ids)
	}
	out, follow, err := s.runPlan(ctx, conv, ev, at, snap, entry, p, convIDs, evIDs)
	if err != nil {
		return nil, err
	}
	// 4. Record the sessions on the conversation; let the identities of newly linked sessions
	// follow it (a new session of the same person links by itself); remember the contact's
	// conversations for a later merge.
	if err := s.recordPlan(ctx, conv, snap, p, follow, nowMs); err != nil {
		return nil, err
	}
	if ev.ContactID != "" && linksSessions(ev.Type) {
		kk := keysOfContact(ev.ContactID)
		pipe := s.rdb.Pipeline()
		pipe.SAdd(ctx, kk.convs, conv)
		pipe.PExpire(ctx, kk.convs, s.cfg.SessionTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			s.redisFailed("contact")
			return nil, fmt.Errorf("linkstore: contact %s: add conversation %s: %w", ev.ContactID, conv, err)
		}
	}
	return out, nil
}

// runPlan runs the link step for every session of the plan and returns the flushed batches and
// the identities of flushed sessions the conversation does not know yet.
func (s *Store) runPlan(ctx context.Context, conv string, ev messages.ConversationEvent, at int64, snap string,
	entry entryHead, p plan, convIDs, evIDs []string) ([]messages.ConversationActions, []string, error) {
	detached := snap
	if slices.ContainsFunc(p.Sessions, func(ps planSession) bool { return ps.Detach }) {
		var err error
		if detached, err = withState(snap, "detached"); err != nil {
			return nil, nil, fmt.Errorf("linkstore: conversation %s: %w", conv, err)
		}
	}
	ttlMs := s.cfg.SessionTTL.Milliseconds()
	calls := make([]*scriptCall, len(p.Sessions))
	for n, ps := range p.Sessions {
		sk := keysOfSession(ps.ID)
		e, flush := snap, "0"
		if ps.Detach {
			e = detached
		}
		if ps.Flush {
			flush = "1"
		}
		calls[n] = &scriptCall{
			script: s.scripts.link,
			keys:   []string{sk.links, sk.buf, sk.ids, sk.flush(ev.EventID, conv), sk.acts},
			args: []any{conv, e, flush, at, s.cfg.BufferWindow.Milliseconds(), ttlMs,
				s.cfg.ClosedGrace.Milliseconds()},
		}
	}
	if err := s.run(ctx, "link", calls); err != nil {
		return nil, nil, err
	}
	var out []messages.ConversationActions
	var follow []string
	for n, ps := range p.Sessions {
		res, err := calls[n].cmd.Slice()
		if err != nil || len(res) != 5 {
			return nil, nil, fmt.Errorf("linkstore: link %s to %s: unexpected reply (%d items): %v", ps.ID, conv, len(res), err)
		}
		batch, _ := res[0].(string)
		sessionIDs, err := stringList(res[1])
		if err != nil {
			return nil, nil, fmt.Errorf("linkstore: link %s to %s: %w", ps.ID, conv, err)
		}
		old, _ := res[2].(int64)
		flushed, _ := res[3].(int64)
		isNew, _ := res[4].(int64)
		s.metrics.dropped.WithLabelValues(dropWindow).Add(float64(old))
		s.metrics.flushed.Add(float64(flushed))
		if isNew == 1 {
			via := ps.Via
			if via == "" {
				via = "identity"
			}
			s.metrics.linked.WithLabelValues(via).Inc()
		}
		if batch != "" {
			var b flushedBatch
			if err := json.Unmarshal([]byte(batch), &b); err != nil {
				return nil, nil, fmt.Errorf("linkstore: link %s to %s: decode flushed batch: %w", ps.ID, conv, err)
			}
			out = append(out, messages.ConversationActions{
				Version:         messages.Version,
				ConversationID:  b.Conv,
				WorkspaceID:     b.Workspace,
				SessionID:       ps.ID,
				PreConversation: true,
				Actions:         b.Actions,
			})
		}
		if ps.Flush && entry.St == "open" {
			for _, k := range sessionIDs {
				if !contains(convIDs, k) && !contains(evIDs, k) && !contains(follow, k) {
					follow = append(follow, k)
				}
			}
		}
	}
	return out, follow, nil
}

// recordPlan records the plan's sessions on the conversation (dropping detached ones) and
// registers the conversation with the identities in follow.
func (s *Store) recordPlan(ctx context.Context, conv, snap string, p plan, follow []string, nowMs int64) error {
	if len(p.Sessions) == 0 && len(follow) == 0 {
		return nil
	}
	var set, del []any
	for _, ps := range p.Sessions {
		if ps.Detach {
			del = append(del, ps.ID)
		} else {
			set = append(set, ps.ID, ps.Contact)
		}
	}
	args := []any{"apply", s.cfg.SessionTTL.Milliseconds(), len(set) / 2}
	args = append(args, set...)
	args = append(args, len(del))
	args = append(args, del...)
	args = append(args, len(follow))
	for _, k := range follow {
		args = append(args, k)
	}
	ck := keysOfConversation(conv)
	call := &scriptCall{script: s.scripts.convSessions, keys: []string{ck.record, ck.sessions, ck.ids}, args: args}
	if err := s.run(ctx, "register", []*scriptCall{call}); err != nil {
		return err
	}
	_, err := s.registerIdentities(ctx, conv, snap, follow, nowMs)
	return err
}

// makePlan decides which sessions the event touches. For a linking event it registers the
// conversation with its identities, each of which answers with its active session, and links
// the hinted session, else the external id's, else the email's (else the conversation stays
// pending with those identities). Other events update the sessions already linked.
func (s *Store) makePlan(ctx context.Context, conv string, ev messages.ConversationEvent, snap string, entry entryHead,
	flatSessions, convIDs, evIDs []string, nowMs int64) (plan, error) {
	var p plan
	linked := make(map[string]string, len(flatSessions)/2) // session → contact
	var ids []string
	for n := 0; n+1 < len(flatSessions); n += 2 {
		linked[flatSessions[n]] = flatSessions[n+1]
		ids = append(ids, flatSessions[n])
	}
	slices.Sort(ids)

	switch {
	case ev.Type == messages.ConvContactDetached:
		detached, err := withState(snap, "detached")
		if err != nil {
			return p, fmt.Errorf("linkstore: conversation %s: %w", conv, err)
		}
		if _, err := s.registerIdentities(ctx, conv, detached, evIDs, nowMs); err != nil {
			return p, err
		}
		for _, sid := range ids {
			if ev.ContactID != "" && linked[sid] == ev.ContactID {
				p.Sessions = append(p.Sessions, planSession{ID: sid, Detach: true, Contact: ev.ContactID})
			}
		}
		return p, nil

	case linksSessions(ev.Type) && entry.St != "deleted":
		order := linkOrder(evIDs, convIDs)
		regs, err := s.registerIdentities(ctx, conv, snap, order, nowMs)
		if err != nil {
			return p, err
		}
		chosen, via := ev.SessionHint, "hint"
		if chosen == "" {
			for n, k := range order {
				if regs[n].active == "" {
					continue
				}
				chosen = regs[n].active
				switch {
				case !contains(evIDs, k):
					via = "identity"
				case strings.HasPrefix(k, identityEmail):
					via = "email"
				default:
					via = "external_id"
				}
				break
			}
		}
		if chosen == "" && entry.St == "open" {
			for _, r := range regs {
				if r.pending {
					s.metrics.pending.Inc()
					break
				}
			}
		}
		for _, sid := range ids {
			p.Sessions = append(p.Sessions, planSession{ID: sid, Flush: true, Contact: linked[sid]})
		}
		if chosen != "" {
			if _, ok := linked[chosen]; !ok {
				p.Sessions = append(p.Sessions, planSession{ID: chosen, Flush: true, Contact: ev.ContactID, Via: via})
			}
		}
		return p, nil

	default: // closed, deleted, or anything on a deleted conversation: update what is linked
		if _, err := s.registerIdentities(ctx, conv, snap, convIDs, nowMs); err != nil {
			return p, err
		}
		for _, sid := range ids {
			p.Sessions = append(p.Sessions, planSession{ID: sid, Contact: linked[sid]})
		}
		return p, nil
	}
}

// linkOrder lists the identities to look a session up by: the event's own (external id, then
// email), then those the conversation gathered before, external ids first.
func linkOrder(evIDs, convIDs []string) []string {
	order := slices.Clone(evIDs)
	rest := slices.Clone(convIDs)
	slices.SortFunc(rest, func(a, b string) int {
		ea, eb := strings.HasPrefix(a, identityEmail), strings.HasPrefix(b, identityEmail)
		if ea != eb {
			if ea {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, k := range rest {
		if !contains(order, k) {
			order = append(order, k)
		}
	}
	return order
}

type registration struct {
	active  string
	pending bool
}

// registerIdentities gives each identity the conversation's entry and returns each identity's
// active session.
func (s *Store) registerIdentities(ctx context.Context, conv, entry string, identities []string, nowMs int64) ([]registration, error) {
	calls := make([]*scriptCall, len(identities))
	for n, k := range identities {
		ik := keysOfIdentity(k)
		calls[n] = &scriptCall{
			script: s.scripts.identityRegister,
			keys:   []string{ik.session, ik.convs},
			args:   []any{conv, entry, nowMs, s.cfg.PendingTTL.Milliseconds(), s.cfg.SessionTTL.Milliseconds()},
		}
	}
	if err := s.run(ctx, "identity", calls); err != nil {
		return nil, err
	}
	out := make([]registration, len(identities))
	for n, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil || len(res) != 2 {
			return nil, fmt.Errorf("linkstore: identity %s: unexpected reply (%d items): %v", identities[n], len(res), err)
		}
		out[n].active, _ = res[0].(string)
		pending, _ := res[1].(int64)
		out[n].pending = pending == 1
	}
	return out, nil
}

// withState returns the entry with its state replaced.
func withState(entry, state string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(entry), &m); err != nil {
		return "", fmt.Errorf("entry %q: %w", entry, err)
	}
	m["st"] = state
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode entry: %w", err)
	}
	return string(b), nil
}
