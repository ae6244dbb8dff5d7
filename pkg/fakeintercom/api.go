package fakeintercom

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const maxRequestBody = 1 << 20

// decodeBody reads a JSON request body, numbers kept as json.Number.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(data) > maxRequestBody {
		writeError(w, http.StatusBadRequest, "parameter_invalid", "Request body could not be read")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "parameter_invalid", "Request body is not valid JSON")
		return false
	}
	return true
}

// idValue reads an id sent as a string or an integer; ok is false for anything else.
func idValue(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return v.String(), true
		}
	}
	return "", false
}

func (s *Server) admin() Author {
	return Author{Type: "admin", ID: s.opts.AdminID, Name: s.opts.AdminName, Email: s.opts.AdminEmail}
}

// handleReply serves POST /conversations/{id}/reply: an admin note, comment or quick reply, or a
// contact's comment.
func (s *Server) handleReply(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "Resource Not Found")
		return
	}
	messageType, _ := req["message_type"].(string)
	body, _ := req["body"].(string)
	at := s.now()
	if v, ok := req["created_at"].(json.Number); ok {
		if sec, err := v.Int64(); err == nil && sec > 0 {
			at = time.Unix(sec, 0)
		}
	}
	switch req["type"] {
	case "admin":
		if !slices.Contains([]string{"comment", "note", "quick_reply"}, messageType) {
			writeErrorField(w, http.StatusBadRequest, "parameter_invalid", "message_type must be comment, note or quick_reply", "message_type")
			return
		}
		adminID, ok := idValue(req["admin_id"])
		if !ok {
			writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "admin_id is required", "admin_id")
			return
		}
		if adminID != s.opts.AdminID {
			writeError(w, http.StatusNotFound, "admin_not_found", "Admin not found")
			return
		}
		if messageType == "quick_reply" {
			if opts, _ := req["reply_options"].([]any); len(opts) == 0 {
				writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "reply_options is required for quick_reply", "reply_options")
				return
			}
		} else if strings.TrimSpace(body) == "" {
			writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "body is required", "body")
			return
		}
		// A note or admin reply leaves the state as it is.
		c.Parts = append(c.Parts, Part{ID: s.nextPartID(), PartType: messageType, Body: body, Author: s.admin(),
			CreatedAt: at, UpdatedAt: at, AppPackageCode: s.opts.AppPackageCode})
		c.UpdatedAt = at
	case "user":
		if messageType != "comment" {
			writeErrorField(w, http.StatusBadRequest, "parameter_invalid", "message_type must be comment", "message_type")
			return
		}
		if strings.TrimSpace(body) == "" {
			writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "body is required", "body")
			return
		}
		ct := s.replyingContact(c, req)
		if ct == nil {
			writeError(w, http.StatusNotFound, "not_found", "User Not Found")
			return
		}
		s.appendContactReply(c, ct, body, at)
		c.Parts[len(c.Parts)-1].AppPackageCode = s.opts.AppPackageCode
	default:
		writeErrorField(w, http.StatusBadRequest, "parameter_invalid", "type must be admin or user", "type")
		return
	}
	writeJSON(w, http.StatusOK, s.conversationWire(c, c.Parts, false))
}

// replyingContact finds the contact of c a contact reply names. Call with s.mu held.
func (s *Server) replyingContact(c *Conversation, req map[string]any) *Contact {
	for _, id := range c.ContactIDs {
		ct := s.contacts[id]
		if v, ok := idValue(req["intercom_user_id"]); ok && v == ct.ID {
			return ct
		}
		if v, ok := idValue(req["user_id"]); ok && v == ct.ExternalID {
			return ct
		}
		if v, _ := req["email"].(string); v != "" && strings.EqualFold(v, ct.Email) {
			return ct
		}
	}
	return nil
}

// handleRedact serves POST /conversations/redact for both shapes: a conversation part, or the source.
func (s *Server) handleRedact(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if !decodeBody(w, r, &req) {
		return
	}
	convID, ok := idValue(req["conversation_id"])
	if !ok {
		writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "conversation_id is required", "conversation_id")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	notFound := func() {
		writeError(w, http.StatusNotFound, "conversation_part_or_message_not_found", "Conversation part or message not found")
	}
	alreadyRedacted := func() {
		writeError(w, http.StatusBadRequest, "parameter_invalid", "Conversation part has already been redacted")
	}
	notRedactable := func() {
		writeError(w, http.StatusBadRequest, "conversation_part_not_redactable", "Conversation part is not redactable")
	}
	c, err := s.conversation(convID)
	now := s.now()
	switch req["type"] {
	case "conversation_part":
		partID, ok := idValue(req["conversation_part_id"])
		if !ok {
			writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "conversation_part_id is required", "conversation_part_id")
			return
		}
		if err != nil {
			notFound()
			return
		}
		i := slices.IndexFunc(c.Parts, func(p Part) bool { return p.ID == partID })
		switch {
		case i < 0:
			notFound()
			return
		case c.Parts[i].Redacted:
			alreadyRedacted()
			return
		case c.Parts[i].Body == "":
			notRedactable()
			return
		}
		p := &c.Parts[i]
		p.Redacted, p.Body, p.UpdatedAt = true, RedactedBody, now
	case "source":
		sourceID, ok := idValue(req["source_id"])
		if !ok {
			writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "source_id is required", "source_id")
			return
		}
		switch {
		case err != nil || c.Source.ID != sourceID:
			notFound()
			return
		case c.Source.Redacted:
			alreadyRedacted()
			return
		case c.Source.Body == "" || (c.Source.Author.Type != "user" && c.Source.Author.Type != "lead"):
			notRedactable()
			return
		}
		c.Source.Redacted, c.Source.Body = true, RedactedBody
	default:
		writeErrorField(w, http.StatusBadRequest, "parameter_invalid", "type must be conversation_part or source", "type")
		return
	}
	c.UpdatedAt = now
	writeJSON(w, http.StatusOK, s.conversationWire(c, c.Parts, false))
}

// handleGetConversation serves GET /conversations/{id} with the 500 newest parts.
func (s *Server) handleGetConversation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "Resource Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.conversationWire(c, c.Parts, r.URL.Query().Get("display_as") == "plaintext"))
}

// handleGetContact serves GET /contacts/{id}.
func (s *Server) handleGetContact(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.contacts[r.PathValue("id")]
	if !ok || ct.MergedInto != "" {
		writeError(w, http.StatusNotFound, "not_found", "Resource Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.contactWire(ct))
}

// handleFindContact serves GET /contacts/find_by_external_id/{external_id}: users only.
func (s *Server) handleFindContact(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.userByExternalID(r.PathValue("external_id"))
	if ct == nil {
		writeError(w, http.StatusNotFound, "not_found", "Resource Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.contactWire(ct))
}

// searchQuery is a single filter {field, operator, value} or a group {operator: AND|OR, value: [...]}.
type searchQuery struct {
	Field    string          `json:"field"`
	Operator string          `json:"operator"`
	Value    json.RawMessage `json:"value"`
}

type searchRequest struct {
	Query      *searchQuery `json:"query"`
	Pagination struct {
		PerPage       json.Number `json:"per_page"`
		StartingAfter string      `json:"starting_after"`
	} `json:"pagination"`
}

const (
	defaultSearchPerPage = 50
	maxPerPage           = 150
	maxSearchNesting     = 2
	maxGroupFilters      = 15
)

var errSearch = errors.New("invalid search query")

// handleSearchContacts serves POST /contacts/search.
func (s *Server) handleSearchContacts(w http.ResponseWriter, r *http.Request) {
	var req searchRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Query == nil {
		writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "query is required", "query")
		return
	}
	perPage := defaultSearchPerPage
	if req.Pagination.PerPage != "" {
		n, err := req.Pagination.PerPage.Int64()
		if err != nil || n < 1 || n > maxPerPage {
			writeErrorField(w, http.StatusBadRequest, "parameter_invalid", fmt.Sprintf("per_page must be between 1 and %d", maxPerPage), "per_page")
			return
		}
		perPage = int(n)
	}
	offset := 0
	if req.Pagination.StartingAfter != "" {
		n, err := decodeCursor(req.Pagination.StartingAfter)
		if err != nil {
			writeErrorField(w, http.StatusBadRequest, "parameter_invalid", "starting_after is not a valid cursor", "starting_after")
			return
		}
		offset = n
	}
	s.mu.Lock()
	var matched []*Contact
	var qerr error
	for _, id := range s.contactOrder {
		ct := s.contacts[id]
		if ct.MergedInto != "" {
			continue
		}
		ok, err := matchQuery(ct, req.Query, 0)
		if err != nil {
			qerr = err
			break
		}
		if ok {
			matched = append(matched, ct)
		}
	}
	if qerr != nil {
		s.mu.Unlock()
		writeErrorField(w, http.StatusBadRequest, "parameter_invalid", qerr.Error(), "query")
		return
	}
	data := []any{}
	for i := offset; i < len(matched) && i < offset+perPage; i++ {
		data = append(data, s.contactWire(matched[i]))
	}
	s.mu.Unlock()
	totalPages := (len(matched) + perPage - 1) / perPage
	pages := map[string]any{"type": "pages", "page": offset/perPage + 1, "per_page": perPage, "total_pages": totalPages}
	if offset+perPage < len(matched) {
		pages["next"] = map[string]any{"page": offset/perPage + 2, "starting_after": encodeCursor(offset + perPage)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"type": "list", "data": data, "total_count": len(matched), "pages": pages})
}

func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeCursor(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 || !strings.HasPrefix(string(b), "offset:") {
		return 0, errSearch
	}
	return n, nil
}

func matchQuery(ct *Contact, q *searchQuery, depth int) (bool, error) {
	switch op := strings.ToUpper(q.Operator); op {
	case "AND", "OR":
		if depth >= maxSearchNesting {
			return false, fmt.Errorf("%w: at most %d levels of nesting", errSearch, maxSearchNesting)
		}
		var subs []searchQuery
		if err := json.Unmarshal(q.Value, &subs); err != nil || len(subs) == 0 {
			return false, fmt.Errorf("%w: %s needs a list of filters", errSearch, op)
		}
		if len(subs) > maxGroupFilters {
			return false, fmt.Errorf("%w: at most %d filters in a group", errSearch, maxGroupFilters)
		}
		all := op == "AND"
		for i := range subs {
			ok, err := matchQuery(ct, &subs[i], depth+1)
			if err != nil {
				return false, err
			}
			if ok != all {
				return ok, nil
			}
		}
		return all, nil
	default:
		return matchFilter(ct, q)
	}
}

func contactField(ct *Contact, field string) (string, error) {
	switch field {
	case "id":
		return ct.ID, nil
	case "external_id":
		return ct.ExternalID, nil
	case "email":
		return ct.Email, nil
	case "role":
		return ct.Role, nil
	case "name":
		return ct.Name, nil
	case "email_domain":
		_, domain, _ := strings.Cut(ct.Email, "@")
		return domain, nil
	}
	if name, ok := strings.CutPrefix(field, "custom_attributes."); ok && name != "" {
		switch v := ct.CustomAttributes[name].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return fmt.Sprint(v), nil
		}
	}
	return "", fmt.Errorf("%w: field %q is not searchable", errSearch, field)
}

func scalar(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("%w: value must be a scalar", errSearch)
}

func matchFilter(ct *Contact, q *searchQuery) (bool, error) {
	got, err := contactField(ct, q.Field)
	if err != nil {
		return false, err
	}
	switch q.Operator {
	case "IN", "NIN":
		var raws []json.RawMessage
		if err := json.Unmarshal(q.Value, &raws); err != nil {
			return false, fmt.Errorf("%w: %s needs a list", errSearch, q.Operator)
		}
		in := false
		for _, raw := range raws {
			v, err := scalar(raw)
			if err != nil {
				return false, err
			}
			in = in || strings.EqualFold(got, v)
		}
		return in == (q.Operator == "IN"), nil
	}
	want, err := scalar(q.Value)
	if err != nil {
		return false, err
	}
	g, w := strings.ToLower(got), strings.ToLower(want)
	switch q.Operator {
	case "=":
		return g == w, nil
	case "!=":
		return g != w, nil
	case "~":
		return strings.Contains(g, w), nil
	case "!~":
		return !strings.Contains(g, w), nil
	case "^":
		return strings.HasPrefix(g, w), nil
	case "$":
		return strings.HasSuffix(g, w), nil
	}
	return false, fmt.Errorf("%w: operator %q", errSearch, q.Operator)
}

// handleCreateEvent serves POST /events: 202 with an empty body.
func (s *Server) handleCreateEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EventName string          `json:"event_name"`
		CreatedAt json.Number     `json:"created_at"`
		UserID    any             `json:"user_id"`
		ID        any             `json:"id"`
		Email     string          `json:"email"`
		Metadata  json.RawMessage `json:"metadata"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.EventName) == "" {
		writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "event_name is required", "event_name")
		return
	}
	createdAt, err := req.CreatedAt.Int64()
	if req.CreatedAt == "" || err != nil || createdAt <= 0 {
		writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "created_at is required (Unix seconds)", "created_at")
		return
	}
	userID, hasUserID := idValue(req.UserID)
	contactID, hasID := idValue(req.ID)
	if !hasUserID && !hasID && req.Email == "" {
		writeError(w, http.StatusBadRequest, "parameter_not_found", "One of user_id, id or email is required")
		return
	}
	keys, meta, err := decodeMetadata(req.Metadata)
	if err != nil {
		writeErrorField(w, http.StatusBadRequest, "parameter_invalid", err.Error(), "metadata")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ct *Contact
	switch {
	case hasID:
		if c := s.contacts[contactID]; c != nil && c.MergedInto == "" {
			ct = c
		}
	case hasUserID:
		ct = s.userByExternalID(userID)
	default:
		for _, id := range s.contactOrder {
			if c := s.contacts[id]; strings.EqualFold(c.Email, req.Email) && c.MergedInto == "" {
				ct = c
				break
			}
		}
	}
	if ct == nil {
		writeError(w, http.StatusNotFound, "not_found", "User Not Found")
		return
	}
	// Intercom ignores an event repeating the contact, name and created_at, and answers 202 all the same.
	dup := slices.ContainsFunc(s.events, func(e Event) bool {
		return e.ContactID == ct.ID && strings.EqualFold(e.EventName, req.EventName) && e.CreatedAt == createdAt
	})
	if !dup {
		s.events = append(s.events, Event{EventName: req.EventName, CreatedAt: createdAt, ContactID: ct.ID,
			UserID: ct.ExternalID, Email: ct.Email, Metadata: meta, MetaKeys: keys, ReceivedAt: s.now()})
	}
	w.WriteHeader(http.StatusAccepted)
}

// decodeMetadata checks event metadata and keeps its first 10 keys in the order sent.
func decodeMetadata(raw json.RawMessage) ([]string, map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, errors.New("metadata must be an object")
	}
	var keys []string
	meta := map[string]any{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, errors.New("metadata is not valid JSON")
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, errors.New("metadata is not valid JSON")
		}
		if key == "" || strings.ContainsAny(key, ".$") {
			return nil, nil, fmt.Errorf("metadata key %q may not be empty or contain . or $", key)
		}
		switch v := v.(type) {
		case string, json.Number, bool, nil:
		case map[string]any:
			if !isRichLink(v) && !isMoney(v) {
				return nil, nil, fmt.Errorf("metadata %q: nested objects are not supported (only rich links and monetary amounts)", key)
			}
		default:
			return nil, nil, fmt.Errorf("metadata %q: arrays are not supported", key)
		}
		if len(keys) < 10 {
			keys = append(keys, key)
			meta[key] = v
		}
	}
	return keys, meta, nil
}

func isRichLink(m map[string]any) bool {
	_, u := m["url"].(string)
	_, v := m["value"].(string)
	return len(m) == 2 && u && v
}

func isMoney(m map[string]any) bool {
	_, a := m["amount"].(json.Number)
	_, c := m["currency"].(string)
	return len(m) == 2 && a && c
}

// handleListEvents serves GET /events?type=user&user_id=|intercom_user_id=|email= (summary=true for counts).
func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("type") != "user" {
		writeErrorField(w, http.StatusBadRequest, "parameter_not_found", "type=user is required", "type")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ct *Contact
	switch {
	case q.Get("intercom_user_id") != "":
		ct = s.contacts[q.Get("intercom_user_id")]
	case q.Get("user_id") != "":
		ct = s.userByExternalID(q.Get("user_id"))
	case q.Get("email") != "":
		for _, id := range s.contactOrder {
			if c := s.contacts[id]; strings.EqualFold(c.Email, q.Get("email")) {
				ct = c
				break
			}
		}
	default:
		writeError(w, http.StatusBadRequest, "parameter_not_found", "One of user_id, intercom_user_id or email is required")
		return
	}
	if ct == nil {
		writeError(w, http.StatusNotFound, "not_found", "User Not Found")
		return
	}
	var mine []Event
	for _, e := range s.events {
		if e.ContactID == ct.ID {
			mine = append(mine, e)
		}
	}
	if q.Get("summary") == "true" {
		type summary struct {
			Name  string `json:"name"`
			First string `json:"first"`
			Last  string `json:"last"`
			Count int    `json:"count"`
		}
		var names []string
		sums := map[string]*summary{}
		for _, e := range mine {
			k := strings.ToLower(e.EventName)
			at := time.Unix(e.CreatedAt, 0).UTC().Format(time.RFC3339)
			if sums[k] == nil {
				sums[k] = &summary{Name: e.EventName, First: at}
				names = append(names, k)
			}
			sums[k].Last, sums[k].Count = at, sums[k].Count+1
		}
		list := []any{}
		for _, k := range names {
			list = append(list, sums[k])
		}
		writeJSON(w, http.StatusOK, map[string]any{"type": "event.summary", "intercom_user_id": ct.ID,
			"user_id": nullable(ct.ExternalID), "email": nullable(ct.Email), "events": list})
		return
	}
	list := []any{}
	for i := len(mine) - 1; i >= 0; i-- { // newest first
		e := mine[i]
		meta := e.Metadata
		if meta == nil {
			meta = map[string]any{}
		}
		list = append(list, map[string]any{"type": "event", "id": fmt.Sprintf("%s-%d", e.ContactID, i), "event_name": e.EventName,
			"created_at": e.CreatedAt, "user_id": nullable(e.UserID), "intercom_user_id": e.ContactID,
			"email": nullable(e.Email), "metadata": meta})
	}
	writeJSON(w, http.StatusOK, map[string]any{"type": "event.list", "events": list, "pages": map[string]any{"type": "pages"}})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var tagPattern = regexp.MustCompile(`<[^>]*>`)

// conversationWire renders c in the 2.14 shape with parts (the 500 newest of them). Call with s.mu held.
func (s *Server) conversationWire(c *Conversation, parts []Part, plaintext bool) map[string]any {
	text := func(b string) any {
		if b == "" {
			return nil
		}
		if plaintext {
			return strings.TrimSpace(tagPattern.ReplaceAllString(b, " "))
		}
		return b
	}
	contacts := []any{}
	for _, id := range c.ContactIDs {
		contacts = append(contacts, map[string]any{"type": "contact", "id": id, "external_id": nullable(s.contacts[id].ExternalID)})
	}
	if len(parts) > maxParts {
		parts = parts[len(parts)-maxParts:]
	}
	wparts := []any{}
	for _, p := range parts {
		var app any
		if p.AppPackageCode != "" {
			app = p.AppPackageCode
		}
		wparts = append(wparts, map[string]any{
			"type": "conversation_part", "id": p.ID, "part_type": p.PartType, "body": text(p.Body),
			"created_at": p.CreatedAt.Unix(), "updated_at": p.UpdatedAt.Unix(), "notified_at": p.CreatedAt.Unix(),
			"assigned_to": nil, "author": authorWire(p.Author), "attachments": []any{}, "external_id": nil,
			"redacted": p.Redacted, "metadata": map[string]any{}, "app_package_code": app,
		})
	}
	attrs := c.CustomAttributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	var waitingSince any
	if c.State == "open" {
		waitingSince = c.UpdatedAt.Unix()
	}
	return map[string]any{
		"type": "conversation", "id": c.ID, "title": nil,
		"created_at": c.CreatedAt.Unix(), "updated_at": c.UpdatedAt.Unix(),
		"waiting_since": waitingSince, "snoozed_until": nil,
		"open": c.State == "open", "state": c.State, "read": false, "priority": "not_priority",
		"admin_assignee_id": nil, "team_assignee_id": nil,
		"tags":                map[string]any{"type": "tag.list", "tags": []any{}},
		"conversation_rating": nil,
		"source": map[string]any{
			"type": "conversation", "id": c.Source.ID, "delivered_as": "customer_initiated", "subject": "",
			"body": text(c.Source.Body), "author": authorWire(c.Source.Author), "attachments": []any{},
			"url": nullable(c.Source.URL), "redacted": c.Source.Redacted,
		},
		"contacts":          map[string]any{"type": "contact.list", "contacts": contacts},
		"teammates":         map[string]any{"type": "admin.list", "teammates": []any{}},
		"custom_attributes": attrs,
		"first_contact_reply": map[string]any{
			"created_at": c.CreatedAt.Unix(), "type": "conversation", "url": nullable(c.Source.URL),
		},
		"sla_applied": nil, "statistics": nil,
		"linked_objects": map[string]any{"type": "list", "data": []any{}, "total_count": 0, "has_more": false},
		"ai_agent":       nil, "ai_agent_participated": false,
		"conversation_parts": map[string]any{
			"type": "conversation_part.list", "conversation_parts": wparts, "total_count": len(c.Parts),
		},
	}
}

func authorWire(a Author) map[string]any {
	return map[string]any{"type": a.Type, "id": a.ID, "name": nullable(a.Name), "email": nullable(a.Email)}
}

// contactWire renders a contact in the 2.14 shape. Call with s.mu held.
func (s *Server) contactWire(ct *Contact) map[string]any {
	attrs := ct.CustomAttributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	list := func(kind string) map[string]any {
		return map[string]any{"type": "list", "data": []any{}, "url": "/contacts/" + ct.ID + "/" + kind, "total_count": 0, "has_more": false}
	}
	return map[string]any{
		"type": "contact", "id": ct.ID, "workspace_id": s.opts.WorkspaceID, "external_id": nullable(ct.ExternalID),
		"role": ct.Role, "email": nullable(ct.Email), "phone": nil, "name": nullable(ct.Name), "avatar": nil,
		"owner_id": nil, "social_profiles": map[string]any{"type": "list", "data": []any{}},
		"has_hard_bounced": false, "marked_email_as_spam": false, "unsubscribed_from_emails": false,
		"created_at": ct.CreatedAt.Unix(), "updated_at": ct.UpdatedAt.Unix(), "signed_up_at": ct.CreatedAt.Unix(),
		"last_seen_at": ct.UpdatedAt.Unix(), "last_replied_at": nil, "last_contacted_at": nil,
		"last_email_opened_at": nil, "last_email_clicked_at": nil, "language_override": nil,
		"browser": nil, "browser_version": nil, "browser_language": nil, "os": nil,
		"location":          map[string]any{"type": "location", "country": nil, "region": nil, "city": nil},
		"custom_attributes": attrs,
		"tags":              list("tags"), "notes": list("notes"), "companies": list("companies"),
	}
}
