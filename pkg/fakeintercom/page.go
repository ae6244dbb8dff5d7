package fakeintercom

import (
	"context"
	"encoding/json"
	"html"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"time"
)

// handleFakeConversations serves GET /_fake/conversations: every conversation with its parts, as JSON.
func (s *Server) handleFakeConversations(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Conversations())
}

// handleFakeEvents serves GET /_fake/events: the data events accepted, as JSON.
func (s *Server) handleFakeEvents(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Events())
}

// createRequest is the body of POST /_fake/conversations.
type createRequest struct {
	Contact          ContactSpec    `json:"contact"`
	Body             string         `json:"body"`
	URL              string         `json:"url"`
	CustomAttributes map[string]any `json:"custom_attributes"`
	WebhookURL       string         `json:"webhook_url"` // default: Options.WebhookURL; "" there too: no webhook
}

// handleFakeCreateConversation serves POST /_fake/conversations: a contact starts a conversation,
// and a signed conversation.user.created goes to the webhook URL.
func (s *Server) handleFakeCreateConversation(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Body == "" {
		req.Body = "<p>Hello, I need help</p>"
	}
	c := s.CreateConversation(req.Contact, req.Body, req.URL, req.CustomAttributes)
	s.respondDelivered(w, r.Context(), http.StatusCreated, req.WebhookURL, "conversation.user.created", c.ID)
}

// webhookRequest is the body of POST /_fake/webhooks and of the conversation actions.
type webhookRequest struct {
	Topic          string `json:"topic"`
	ConversationID string `json:"conversation_id"`
	ContactID      string `json:"contact_id"` // for contact.* topics
	Body           string `json:"body"`       // for user-reply
	WebhookURL     string `json:"webhook_url"`
	Duplicate      bool   `json:"duplicate"`
	Redelivery     bool   `json:"redelivery"`
}

// handleFakeAction serves POST /_fake/conversations/{id}/{action}: the contact replies ("reply",
// with body), or an admin closes or opens the conversation; the matching webhook follows.
func (s *Server) handleFakeAction(w http.ResponseWriter, r *http.Request) {
	var req webhookRequest
	if r.ContentLength != 0 && !decodeBody(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	var topic string
	var err error
	switch r.PathValue("action") {
	case "reply":
		if req.Body == "" {
			req.Body = "<p>Any news?</p>"
		}
		topic = "conversation.user.replied"
		_, err = s.UserReply(id, req.Body)
	case "close":
		topic = "conversation.admin.closed"
		err = s.Close(id)
	case "open":
		topic = "conversation.admin.opened"
		err = s.Open(id)
	default:
		writeError(w, http.StatusNotFound, "not_found", "Unknown action: use reply, close or open")
		return
	}
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	s.respondDelivered(w, r.Context(), http.StatusOK, req.WebhookURL, topic, id)
}

// handleFakeWebhook serves POST /_fake/webhooks: deliver any topic about a conversation or contact.
func (s *Server) handleFakeWebhook(w http.ResponseWriter, r *http.Request) {
	var req webhookRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var opts []DeliveryOption
	if req.Duplicate {
		opts = append(opts, WithDuplicate())
	}
	if req.Redelivery {
		opts = append(opts, WithRedelivery())
	}
	url := s.webhookURL(req.WebhookURL)
	if url == "" {
		writeError(w, http.StatusBadRequest, "parameter_not_found", "webhook_url is required (no default configured)")
		return
	}
	var err error
	if req.ContactID != "" && req.ConversationID == "" {
		err = s.DeliverContactWebhook(r.Context(), url, req.Topic, req.ContactID, opts...)
	} else {
		err = s.DeliverWebhook(r.Context(), url, req.Topic, req.ConversationID, opts...)
	}
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"delivered": false, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivered": true})
}

func (s *Server) webhookURL(u string) string {
	if u != "" {
		return u
	}
	return s.opts.WebhookURL
}

// respondDelivered delivers topic about conversationID when there is a webhook URL, then answers
// with the conversation and what became of the delivery.
func (s *Server) respondDelivered(w http.ResponseWriter, ctx context.Context, status int, webhookURL, topic, conversationID string) {
	out := map[string]any{"delivered": false}
	if url := s.webhookURL(webhookURL); url != "" {
		if err := s.DeliverWebhook(ctx, url, topic, conversationID); err != nil {
			out["delivery_error"] = err.Error()
		} else {
			out["delivered"] = true
		}
	}
	c, _ := s.Conversation(conversationID)
	out["conversation"] = c
	writeJSON(w, status, out)
}

// allowedTag matches an escaped, attribute-less tag of the kinds notes use.
var allowedTag = regexp.MustCompile(`&lt;(/?)(p|br|b|strong|i|em|ul|ol|li|h2|h3|code|pre)\s*/?&gt;`)

// safeBody renders a part body for the page: everything escaped, then the simple formatting
// tags notes use let through.
func safeBody(body string) template.HTML {
	return template.HTML(allowedTag.ReplaceAllString(html.EscapeString(body), "<$1$2>")) // escaped above
}

type pagePart struct {
	Part
	HTML template.HTML
}

type pageConversation struct {
	Conversation
	Contacts []Contact
	Source   template.HTML
	Parts    []pagePart
}

type pageData struct {
	Conversations []pageConversation
	Events        []Event
	Now           time.Time
}

// handlePage serves the page at /: conversations newest first, their parts (notes in note
// colours, redacted parts struck through as deleted), and the data events.
func (s *Server) handlePage(w http.ResponseWriter, _ *http.Request) {
	convs := s.Conversations()
	slices.Reverse(convs)
	data := pageData{Events: s.Events(), Now: s.now()}
	slices.Reverse(data.Events)
	for _, c := range convs {
		pc := pageConversation{Conversation: c, Source: safeBody(c.Source.Body)}
		for _, id := range c.ContactIDs {
			if ct, ok := s.Contact(id); ok {
				pc.Contacts = append(pc.Contacts, ct)
			}
		}
		for _, p := range c.Parts {
			pc.Parts = append(pc.Parts, pagePart{Part: p, HTML: safeBody(p.Body)})
		}
		data.Conversations = append(data.Conversations, pc)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func metaJSON(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"unix":  func(sec int64) string { return time.Unix(sec, 0).Local().Format("2006-01-02 15:04:05") },
	"meta":  metaJSON,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>Fake Intercom</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f5f5f3;color:#1a1a1a}
header{background:#1f1f1f;color:#fff;padding:12px 24px}header small{color:#bbb}
main{display:flex;gap:24px;padding:24px;align-items:flex-start}
.convs{flex:2}.events{flex:1}
.conv{background:#fff;border:1px solid #ddd;border-radius:8px;margin-bottom:18px;padding:14px}
.conv h2{font-size:15px;margin:0 0 6px}.state{font-size:12px;padding:1px 8px;border-radius:9px;background:#e3f5e7;color:#1d6b33}
.state.closed{background:#eee;color:#555}.muted{color:#777;font-size:12px}
.part{border-radius:6px;padding:8px 10px;margin:8px 0}
.part.source,.part.comment{background:#eef3ff;border-left:3px solid #3b6fe0}
.part.note{background:#fef6d8;border-left:3px solid #f2c94c}
.part.system{background:none;color:#777;font-size:12px;padding:2px 10px}
.part .by{font-size:12px;color:#666;margin-bottom:4px}
.deleted{color:#999;text-decoration:line-through}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #ddd;padding:4px 6px;font-size:12px;text-align:left;vertical-align:top}
</style></head><body>
<header><b>Fake Intercom</b> <small>{{len .Conversations}} conversations · {{len .Events}} data events · refreshed {{clock .Now}}</small></header>
<main><section class="convs">
{{range .Conversations}}<article class="conv" id="conv-{{.ID}}">
<h2>Conversation {{.ID}} <span class="state {{.State}}">{{if .Deleted}}deleted{{else}}{{.State}}{{end}}</span></h2>
<div class="muted">{{range .Contacts}}{{.Role}} {{.Name}} {{if .Email}}&lt;{{.Email}}&gt;{{end}} {{if .ExternalID}}external_id {{.ExternalID}}{{end}} (contact {{.ID}}) {{end}}</div>
{{if .Conversation.Source.URL}}<div class="muted">started on {{.Conversation.Source.URL}}</div>{{end}}
{{if .CustomAttributes}}<div class="muted">attributes {{meta .CustomAttributes}}</div>{{end}}
<div class="part source"><div class="by">{{.Conversation.Source.Author.Name}} ({{.Conversation.Source.Author.Type}}) · {{clock .CreatedAt}}</div>
{{if .Conversation.Source.Redacted}}<del class="deleted">This message was deleted</del>{{else}}{{.Source}}{{end}}</div>
{{range .Parts}}{{if or (eq .PartType "note") (eq .PartType "comment") (eq .PartType "quick_reply")}}<div class="part {{.PartType}}" id="part-{{.ID}}">
<div class="by">{{if eq .PartType "note"}}Note{{else}}Reply{{end}} by {{.Author.Name}} ({{.Author.Type}}) · part {{.ID}} · {{clock .CreatedAt}}</div>
{{if .Redacted}}<del class="deleted">This message was deleted</del>{{else}}{{.HTML}}{{end}}</div>
{{else}}<div class="part system">{{.PartType}} by {{.Author.Name}} · {{clock .CreatedAt}}{{if .Body}}: {{.HTML}}{{end}}</div>{{end}}{{end}}
</article>{{else}}<p class="muted">No conversations yet.</p>{{end}}
</section>
<section class="events"><h3>Data events</h3>
<table><tr><th>event</th><th>contact</th><th>created_at</th><th>metadata</th></tr>
{{range .Events}}<tr><td>{{.EventName}}</td><td>{{if .UserID}}{{.UserID}}{{else}}{{.ContactID}}{{end}}</td><td>{{unix .CreatedAt}}</td><td>{{meta .Metadata}}</td></tr>
{{else}}<tr><td colspan="4" class="muted">none yet</td></tr>{{end}}</table>
</section></main></body></html>
`))
