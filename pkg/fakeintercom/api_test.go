package fakeintercom_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
)

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func setAPIHeaders(r *http.Request) {
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Intercom-Version", "2.14")
}

// call makes an API call and decodes the JSON answer (nil for an empty body).
func call(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = jsonBody(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	setAPIHeaders(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(data)) == 0 {
		return resp.StatusCode, nil
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %d body %q is not JSON", method, url, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

func errorCode(body map[string]any) string {
	if body["type"] != "error.list" {
		return ""
	}
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	first, _ := errs[0].(map[string]any)
	code, _ := first["code"].(string)
	return code
}

func TestReplyValidation(t *testing.T) {
	fake, base := newFake(t)
	conv := startConversation(fake)
	url := base + "/conversations/" + conv.ID + "/reply"
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"admin_id as an integer", map[string]any{"message_type": "note", "type": "admin", "admin_id": 7310045, "body": "<p>a</p>"}, 200, ""},
		{"comment by the admin", map[string]any{"message_type": "comment", "type": "admin", "admin_id": adminID, "body": "<p>b</p>"}, 200, ""},
		{"bad message_type", map[string]any{"message_type": "memo", "type": "admin", "admin_id": adminID, "body": "x"}, 400, "parameter_invalid"},
		{"no admin_id", map[string]any{"message_type": "note", "type": "admin", "body": "x"}, 400, "parameter_not_found"},
		{"admin_id as a float", map[string]any{"message_type": "note", "type": "admin", "admin_id": 1.5, "body": "x"}, 400, "parameter_not_found"},
		{"unknown admin", map[string]any{"message_type": "note", "type": "admin", "admin_id": "1", "body": "x"}, 404, "admin_not_found"},
		{"no body", map[string]any{"message_type": "note", "type": "admin", "admin_id": adminID}, 400, "parameter_not_found"},
		{"quick_reply without options", map[string]any{"message_type": "quick_reply", "type": "admin", "admin_id": adminID}, 400, "parameter_not_found"},
		{"no type", map[string]any{"message_type": "note", "admin_id": adminID, "body": "x"}, 400, "parameter_invalid"},
		{"not JSON", "{", 400, "parameter_invalid"},
	}
	for _, tt := range tests {
		status, body := call(t, http.MethodPost, url, tt.body)
		if status != tt.status || errorCode(body) != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, errorCode(body), tt.status, tt.code)
		}
	}
	notes := fake.Notes(conv.ID)
	if len(notes) != 1 || notes[0].Body != "<p>a</p>" {
		t.Errorf("notes = %+v", notes)
	}
	if status, body := call(t, http.MethodPost, base+"/conversations/999/reply", tests[0].body); status != 404 || errorCode(body) != "not_found" {
		t.Errorf("missing conversation: %d %v", status, body)
	}

	// A contact's reply on a closed conversation re-opens it with an "open" part.
	if err := fake.Close(conv.ID); err != nil {
		t.Fatal(err)
	}
	status, body := call(t, http.MethodPost, url, map[string]any{"message_type": "comment", "type": "user", "user_id": "cust_4821", "body": "<p>again</p>"})
	if status != 200 || body["state"] != "open" {
		t.Fatalf("contact reply: %d %v", status, body["state"])
	}
	c, _ := fake.Conversation(conv.ID)
	if last := c.Parts[len(c.Parts)-1]; last.PartType != "open" || last.Author.Type != "user" {
		t.Errorf("last part = %+v", last)
	}
	if status, _ := call(t, http.MethodPost, url, map[string]any{"message_type": "comment", "type": "user", "user_id": "someone", "body": "x"}); status != 404 {
		t.Errorf("reply by a stranger: %d", status)
	}
}

func TestRedactShapes(t *testing.T) {
	fake, base := newFake(t)
	conv := startConversation(fake)
	url := base + "/conversations/redact"
	_, reply := call(t, http.MethodPost, base+"/conversations/"+conv.ID+"/reply",
		map[string]any{"message_type": "note", "type": "admin", "admin_id": adminID, "body": "<p>raw</p>"})
	parts := reply["conversation_parts"].(map[string]any)["conversation_parts"].([]any)
	partID := parts[len(parts)-1].(map[string]any)["id"].(string)
	var partNum json.Number = json.Number(partID)

	status, body := call(t, http.MethodPost, url, map[string]any{"type": "conversation_part", "conversation_id": json.Number(conv.ID), "conversation_part_id": partNum})
	if status != 200 {
		t.Fatalf("redact with integer ids: %d %v", status, body)
	}
	p := body["conversation_parts"].(map[string]any)["conversation_parts"].([]any)[0].(map[string]any)
	if p["redacted"] != true || p["body"] != fakeintercom.RedactedBody {
		t.Errorf("redacted part = %v", p)
	}
	if status, body := call(t, http.MethodPost, url, map[string]any{"type": "conversation_part", "conversation_id": conv.ID, "conversation_part_id": partID}); status != 400 {
		t.Errorf("repeat: %d %v", status, body)
	}
	if status, body := call(t, http.MethodPost, url, map[string]any{"type": "conversation_part", "conversation_id": conv.ID, "conversation_part_id": "1"}); status != 404 || errorCode(body) != "conversation_part_or_message_not_found" {
		t.Errorf("missing part: %d %v", status, body)
	}
	if status, body := call(t, http.MethodPost, url, map[string]any{"type": "conversation_part", "conversation_id": conv.ID}); status != 400 || errorCode(body) != "parameter_not_found" {
		t.Errorf("no part id: %d %v", status, body)
	}
	// The source, written by the contact, can be redacted with source_id.
	status, body = call(t, http.MethodPost, url, map[string]any{"type": "source", "conversation_id": conv.ID, "source_id": conv.Source.ID})
	if src := body["source"].(map[string]any); status != 200 || src["redacted"] != true || src["body"] != fakeintercom.RedactedBody {
		t.Errorf("source: %d %v", status, body["source"])
	}
	if status, _ := call(t, http.MethodPost, url, map[string]any{"type": "source", "conversation_id": conv.ID, "conversation_part_id": conv.Source.ID}); status != 400 {
		t.Errorf("source without source_id: %d", status)
	}
	if status, _ := call(t, http.MethodPost, url, map[string]any{"type": "message", "conversation_id": conv.ID}); status != 400 {
		t.Errorf("unknown type: %d", status)
	}
}

func TestSearchContacts(t *testing.T) {
	fake, base := newFake(t)
	for i, spec := range []fakeintercom.ContactSpec{
		{ExternalID: "u1", Email: "a@example.com", CustomAttributes: map[string]any{"threadline_session_id": "s1"}},
		{ExternalID: "u2", Email: "b@example.com"},
		{ExternalID: "u3", Email: "c@example.org"},
		{Name: "Visitor", CustomAttributes: map[string]any{"threadline_session_id": "s1"}},
	} {
		fake.CreateConversation(spec, "<p>hi</p>", "", map[string]any{"n": i})
	}
	search := func(query any, pagination map[string]any) (int, map[string]any) {
		body := map[string]any{"query": query}
		if pagination != nil {
			body["pagination"] = pagination
		}
		return call(t, http.MethodPost, base+"/contacts/search", body)
	}
	ids := func(body map[string]any) []string {
		var out []string
		for _, d := range body["data"].([]any) {
			if ext, ok := d.(map[string]any)["external_id"].(string); ok {
				out = append(out, ext)
			} else {
				out = append(out, "lead")
			}
		}
		return out
	}
	tests := []struct {
		name  string
		query any
		want  string
	}{
		{"external_id =", map[string]any{"field": "external_id", "operator": "=", "value": "u2"}, "u2"},
		{"email IN", map[string]any{"field": "email", "operator": "IN", "value": []string{"a@example.com", "c@example.org"}}, "u1,u3"},
		{"role = lead", map[string]any{"field": "role", "operator": "=", "value": "lead"}, "lead"},
		{"custom attribute", map[string]any{"field": "custom_attributes.threadline_session_id", "operator": "=", "value": "s1"}, "u1,lead"},
		{"AND", map[string]any{"operator": "AND", "value": []any{
			map[string]any{"field": "custom_attributes.threadline_session_id", "operator": "=", "value": "s1"},
			map[string]any{"field": "role", "operator": "=", "value": "user"}}}, "u1"},
		{"OR of NIN and $", map[string]any{"operator": "OR", "value": []any{
			map[string]any{"field": "email", "operator": "$", "value": ".org"},
			map[string]any{"field": "external_id", "operator": "NIN", "value": []string{"u1", "u2", "u3"}}}}, "u3,lead"},
	}
	for _, tt := range tests {
		status, body := search(tt.query, nil)
		if got := strings.Join(ids(body), ","); status != 200 || got != tt.want || body["type"] != "list" {
			t.Errorf("%s: %d %s, want %s", tt.name, status, got, tt.want)
		}
	}
	// Cursor pages of 2 over 3 users.
	users := map[string]any{"field": "role", "operator": "=", "value": "user"}
	status, page1 := search(users, map[string]any{"per_page": 2})
	pages := page1["pages"].(map[string]any)
	next, _ := pages["next"].(map[string]any)
	if status != 200 || strings.Join(ids(page1), ",") != "u1,u2" || page1["total_count"] != float64(3) || pages["total_pages"] != float64(2) || next == nil {
		t.Fatalf("page 1: %v", page1)
	}
	_, page2 := search(users, map[string]any{"per_page": 2, "starting_after": next["starting_after"]})
	if strings.Join(ids(page2), ",") != "u3" || page2["pages"].(map[string]any)["next"] != nil {
		t.Errorf("page 2: %v", page2)
	}
	deep := map[string]any{"operator": "AND", "value": []any{map[string]any{"operator": "OR", "value": []any{
		map[string]any{"operator": "AND", "value": []any{users}}}}}}
	for name, q := range map[string]any{
		"three levels":     deep,
		"unknown field":    map[string]any{"field": "shoe_size", "operator": "=", "value": "9"},
		"unknown operator": map[string]any{"field": "email", "operator": "LIKE", "value": "x"},
	} {
		if status, body := search(q, nil); status != 400 || errorCode(body) != "parameter_invalid" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	if status, _ := search(users, map[string]any{"per_page": 151}); status != 400 {
		t.Errorf("per_page 151: %d", status)
	}
}

func TestEventsEndpoints(t *testing.T) {
	fake, base := newFake(t)
	conv := startConversation(fake)
	url := base + "/events"
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"accepted", map[string]any{"event_name": "hit-checkout-error", "created_at": 1795000000, "user_id": "cust_4821",
			"metadata": map[string]any{"page": "checkout", "price": map[string]any{"amount": 4900, "currency": "eur"},
				"doc": map[string]any{"url": "https://x.example", "value": "Doc"}}}, 202, ""},
		{"by contact id", map[string]any{"event_name": "viewed-pricing", "created_at": 1795000001, "id": conv.ContactIDs[0]}, 202, ""},
		{"by email", map[string]any{"event_name": "viewed-billing", "created_at": 1795000002, "email": "ana@example.com"}, 202, ""},
		{"no event_name", map[string]any{"created_at": 1795000000, "user_id": "cust_4821"}, 400, "parameter_not_found"},
		{"no created_at", map[string]any{"event_name": "x", "user_id": "cust_4821"}, 400, "parameter_not_found"},
		{"created_at as text", map[string]any{"event_name": "x", "created_at": "yesterday", "user_id": "cust_4821"}, 400, "parameter_invalid"},
		{"no user", map[string]any{"event_name": "x", "created_at": 1795000000}, 400, "parameter_not_found"},
		{"nested metadata", map[string]any{"event_name": "x", "created_at": 1795000000, "user_id": "cust_4821",
			"metadata": map[string]any{"cart": map[string]any{"items": 2}}}, 400, "parameter_invalid"},
		{"array metadata", map[string]any{"event_name": "x", "created_at": 1795000000, "user_id": "cust_4821",
			"metadata": map[string]any{"items": []int{1}}}, 400, "parameter_invalid"},
		{"dotted key", map[string]any{"event_name": "x", "created_at": 1795000000, "user_id": "cust_4821",
			"metadata": map[string]any{"a.b": 1}}, 400, "parameter_invalid"},
		{"unknown user", map[string]any{"event_name": "x", "created_at": 1795000000, "user_id": "nobody"}, 404, "not_found"},
	}
	for _, tt := range tests {
		status, body := call(t, http.MethodPost, url, tt.body)
		if status != tt.status || errorCode(body) != tt.code || (status == 202 && body != nil) {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, body, tt.status, tt.code)
		}
	}
	events := fake.Events()
	if len(events) != 3 || events[0].Metadata["page"] != "checkout" || events[2].ContactID != conv.ContactIDs[0] {
		t.Errorf("events = %+v", events)
	}
	status, list := call(t, http.MethodGet, url+"?type=user&user_id=cust_4821", nil)
	evs, _ := list["events"].([]any)
	if status != 200 || list["type"] != "event.list" || len(evs) != 3 || evs[0].(map[string]any)["event_name"] != "viewed-billing" {
		t.Errorf("list: %d %v", status, list)
	}
	status, summary := call(t, http.MethodGet, url+"?type=user&intercom_user_id="+conv.ContactIDs[0]+"&summary=true", nil)
	if sums, _ := summary["events"].([]any); status != 200 || summary["type"] != "event.summary" || len(sums) != 3 {
		t.Errorf("summary: %d %v", status, summary)
	}
	if status, _ := call(t, http.MethodGet, url+"?type=user&user_id=nobody", nil); status != 404 {
		t.Errorf("unknown user: %d", status)
	}
	if status, _ := call(t, http.MethodGet, url+"?user_id=cust_4821", nil); status != 400 {
		t.Errorf("no type: %d", status)
	}
}

func TestEventMetadataKeepsTenKeysInOrder(t *testing.T) {
	fake, base := newFake(t)
	startConversation(fake)
	var sb strings.Builder
	sb.WriteString(`{"event_name":"many","created_at":1795000000,"user_id":"cust_4821","metadata":{`)
	for i := range 12 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k` + string(rune('l'-i)) + `":1`)
	}
	sb.WriteString("}}")
	req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(sb.String()))
	setAPIHeaders(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	events := fake.Events()
	if resp.StatusCode != 202 || len(events) != 1 || len(events[0].Metadata) != 10 || events[0].MetaKeys[0] != "kl" ||
		events[0].MetaKeys[9] != "kc" || events[0].Metadata["kb"] != nil {
		t.Errorf("%d: kept %v", resp.StatusCode, events[0].MetaKeys)
	}
}

func TestRequestCountersAndUnknownRoutes(t *testing.T) {
	fake, base := newFake(t)
	conv := startConversation(fake)
	call(t, http.MethodGet, base+"/conversations/"+conv.ID, nil)
	call(t, http.MethodGet, base+"/contacts/"+conv.ContactIDs[0], nil)
	call(t, http.MethodGet, base+"/contacts/find_by_external_id/cust_4821", nil)
	status, body := call(t, http.MethodGet, base+"/tickets/1", nil)
	if status != 404 || errorCode(body) != "not_found" {
		t.Errorf("unknown route: %d %v", status, body)
	}
	for ep, want := range map[string]int{
		fakeintercom.EndpointGetConversation: 1, fakeintercom.EndpointGetContact: 1,
		fakeintercom.EndpointFindContact: 1, fakeintercom.EndpointUnknown: 1, fakeintercom.EndpointReply: 0,
	} {
		if got := fake.Requests(ep); got != want {
			t.Errorf("%s: %d requests, want %d", ep, got, want)
		}
	}
	status, plain := call(t, http.MethodGet, base+"/conversations/"+conv.ID+"?display_as=plaintext", nil)
	if src := plain["source"].(map[string]any); status != 200 || src["body"] != "I can't change my plan" {
		t.Errorf("plaintext: %v", src["body"])
	}
}

func TestPageAndFakeEndpoints(t *testing.T) {
	fake, base := newFake(t)
	rc := newReceiver(t)
	conv := startConversation(fake)
	_, reply := call(t, http.MethodPost, base+"/conversations/"+conv.ID+"/reply",
		map[string]any{"message_type": "note", "type": "admin", "admin_id": adminID, "body": "<p><b>[1]</b> User opened the pricing page</p>"})
	parts := reply["conversation_parts"].(map[string]any)["conversation_parts"].([]any)
	first := parts[0].(map[string]any)["id"].(string)
	call(t, http.MethodPost, base+"/conversations/"+conv.ID+"/reply",
		map[string]any{"message_type": "note", "type": "admin", "admin_id": adminID, "body": `<p>raw <script>alert(1)</script></p>`})
	call(t, http.MethodPost, base+"/conversations/redact", map[string]any{"type": "conversation_part", "conversation_id": conv.ID, "conversation_part_id": first})
	call(t, http.MethodPost, base+"/events", map[string]any{"event_name": "hit-checkout-error", "created_at": 1795000000, "user_id": "cust_4821"})

	resp, err := http.Get(base + "/") // no token needed
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(page)
	for _, want := range []string{
		"Conversation " + conv.ID, `class="part note" id="part-` + first + `"`, `<del class="deleted">This message was deleted</del>`,
		"&lt;script&gt;alert(1)&lt;/script&gt;", "hit-checkout-error", "cust_4821", "https://app.example.com/checkout",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if resp.StatusCode != 200 || strings.Contains(html, "<script>") || strings.Contains(html, "User opened the pricing page") {
		t.Errorf("page: %d, raw script or redacted text shown", resp.StatusCode)
	}

	resp, err = http.Get(base + "/_fake/conversations")
	if err != nil {
		t.Fatal(err)
	}
	var convs []fakeintercom.Conversation
	if err := json.NewDecoder(resp.Body).Decode(&convs); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(convs) != 1 || len(convs[0].Parts) != 2 || !convs[0].Parts[0].Redacted {
		t.Errorf("JSON view = %+v", convs)
	}

	// Create a conversation and have the webhook delivered, as the dev stack does.
	resp, err = http.Post(base+"/_fake/conversations", "application/json", jsonBody(map[string]any{
		"contact": map[string]any{"external_id": "cust_7", "email": "e@example.com"}, "url": "https://app.example.com/x",
		"custom_attributes": map[string]any{"threadline_session_id": "s7"}, "webhook_url": rc.url,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Delivered    bool                      `json:"delivered"`
		Conversation fakeintercom.Conversation `json:"conversation"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || !created.Delivered || len(rc.deliveries()) != 1 || rc.deliveries()[0].note.ItemID() != created.Conversation.ID {
		t.Fatalf("create: %d %+v", resp.StatusCode, created)
	}
	for action, topic := range map[string]string{"reply": "conversation.user.replied", "close": "conversation.admin.closed"} {
		resp, err := http.Post(base+"/_fake/conversations/"+created.Conversation.ID+"/"+action, "application/json",
			jsonBody(map[string]any{"webhook_url": rc.url}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		all := rc.deliveries()
		if resp.StatusCode != 200 || all[len(all)-1].note.Topic != topic {
			t.Errorf("%s: %d, last topic %s", action, resp.StatusCode, all[len(all)-1].note.Topic)
		}
	}
	resp, err = http.Post(base+"/_fake/webhooks", "application/json", jsonBody(map[string]any{
		"topic": "conversation.admin.opened", "conversation_id": created.Conversation.ID, "webhook_url": rc.url, "duplicate": true}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	all := rc.deliveries()
	if resp.StatusCode != 200 || len(all) != 5 || all[4].note.ID != all[3].note.ID || all[4].note.Topic != "conversation.admin.opened" {
		t.Errorf("webhook endpoint: %d, %d deliveries", resp.StatusCode, len(all))
	}
	resp, err = http.Get(base + "/_fake/events")
	if err != nil {
		t.Fatal(err)
	}
	var events []fakeintercom.Event
	_ = json.NewDecoder(resp.Body).Decode(&events)
	resp.Body.Close()
	if len(events) != 1 || events[0].EventName != "hit-checkout-error" {
		t.Errorf("events view = %+v", events)
	}
}

func TestConfig(t *testing.T) {
	var c fakeintercom.Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	env := map[string]string{"THREADLINE_FAKE_TOKEN": "t2", "THREADLINE_FAKE_RATE_LIMIT_PER_10S": "50", "THREADLINE_FAKE_ADDR": "127.0.0.1:9999"}
	if err := config.Parse(fs, nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o := c.Options()
	if o.Token != "t2" || o.RateLimitPer10s != 50 || o.AdminID != fakeintercom.DefaultAdminID || o.ClientSecret != fakeintercom.DefaultClientSecret || c.Addr != "127.0.0.1:9999" {
		t.Errorf("options = %+v", o)
	}
	for name, edit := range map[string]func(*fakeintercom.Config){
		"no addr":    func(c *fakeintercom.Config) { c.Addr = "" },
		"bad addr":   func(c *fakeintercom.Config) { c.Addr = "nohost" },
		"no token":   func(c *fakeintercom.Config) { c.Token = config.Secret{} },
		"no admin":   func(c *fakeintercom.Config) { c.AdminID = "" },
		"no secret":  func(c *fakeintercom.Config) { c.ClientSecret = config.Secret{} },
		"zero limit": func(c *fakeintercom.Config) { c.RateLimitPer10s = 0 },
	} {
		bad := c
		edit(&bad)
		if bad.Validate() == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
}
