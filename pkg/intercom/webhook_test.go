package intercom_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/intercom"
)

// sign is an independent HMAC-SHA1 signer, as Intercom signs.
func sign(secret, body string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha1=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySignature(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "webhooks", "user_created.json"))
	if err != nil {
		t.Fatal(err)
	}
	ping, err := os.ReadFile(filepath.Join("testdata", "webhooks", "ping.json"))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "client-secret-1"
	valid := sign(secret, string(body))
	tampered := strings.Replace(string(body), "cust_4821", "cust_4822", 1)
	tests := []struct {
		name   string
		secret string
		body   string
		header string
		want   bool
	}{
		{"valid", secret, string(body), valid, true},
		{"valid ping", secret, string(ping), sign(secret, string(ping)), true},
		{"tampered body with the original signature", secret, tampered, valid, false},
		{"unsigned", secret, string(body), "", false},
		{"wrong secret", "another-secret", string(body), valid, false},
		{"signature of the tampered body under another key", secret, tampered, sign("x", tampered), false},
		{"missing sha1= prefix", secret, string(body), strings.TrimPrefix(valid, "sha1="), false},
		{"sha256 label", secret, string(body), "sha256=" + strings.TrimPrefix(valid, "sha1="), false},
		{"truncated", secret, string(body), valid[:len(valid)-2], false},
		{"empty secret never verifies", "", string(body), sign("", string(body)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := intercom.VerifySignature([]byte(tt.secret), []byte(tt.body), tt.header); got != tt.want {
				t.Fatalf("VerifySignature = %v, want %v", got, tt.want)
			}
		})
	}
	if got := intercom.Sign([]byte(secret), body); got != valid {
		t.Errorf("Sign = %q, want %q", got, valid)
	}
}

func TestParseNotification(t *testing.T) {
	n := loadNotification(t, "user_created.json")
	if n.Topic != intercom.TopicUserCreated || n.AppID != "ab12cd34" || n.ItemType() != "conversation" ||
		n.ItemID() != "215471883220312" || n.CreatedAt != 1795000122 || n.DeliveryAttempts != 1 || n.Redelivery() {
		t.Errorf("parsed %+v (item %s %s)", n, n.ItemType(), n.ItemID())
	}
	ping := loadNotification(t, "ping.json")
	if ping.ID != "" || ping.ItemType() != "ping" {
		t.Errorf("ping: id %q item %q", ping.ID, ping.ItemType())
	}
	del := loadNotification(t, "conversation_deleted.json")
	if del.ItemID() != "215471883220312" {
		t.Errorf("deleted item id = %q, want the conversation_id", del.ItemID())
	}

	for name, body := range map[string]string{
		"not JSON":        `<html>`,
		"no topic":        `{"type":"notification_event","data":{"item":{"type":"ping"}}}`,
		"no item":         `{"type":"notification_event","topic":"ping","data":{}}`,
		"null item":       `{"type":"notification_event","topic":"ping","data":{"item":null}}`,
		"other type":      `{"type":"event","topic":"ping","data":{"item":{"type":"ping"}}}`,
		"item not object": `{"type":"notification_event","topic":"ping","data":{"item":"x"}}`,
	} {
		if _, err := intercom.ParseNotification([]byte(body)); !errors.Is(err, intercom.ErrMalformedNotification) {
			t.Errorf("%s: err = %v, want ErrMalformedNotification", name, err)
		}
	}
}

func TestDedupKey(t *testing.T) {
	if got := loadNotification(t, "user_created.json").DedupKey(); got != "notif_5b0d7c2e-1f2a-4c8e-9a61-0f4d2b9c7e11" {
		t.Errorf("key with an id = %q", got)
	}
	read := loadNotification(t, "conversation_read_null_id.json")
	if !read.Redelivery() {
		t.Error("delivery_attempts 2 is a redelivery")
	}
	key := read.DedupKey()
	if len(key) != 64 {
		t.Fatalf("fallback key = %q, want a hex sha256", key)
	}
	again := loadNotification(t, "conversation_read_null_id.json")
	if again.DedupKey() != key {
		t.Error("the fallback key is not stable across deliveries")
	}
	body := `{"type":"notification_event","topic":"conversation.read","id":null,"created_at":%d,"data":{"item":{"type":"conversation","id":"215471883220312"}}}`
	for _, other := range []string{
		strings.Replace(body, "%d", "1795000300", 1),
		strings.Replace(strings.Replace(body, "%d", "1795000299", 1), "215471883220312", "215471883220313", 1),
		strings.Replace(strings.Replace(body, "%d", "1795000299", 1), "conversation.read", "conversation.admin.closed", 1),
	} {
		n, err := intercom.ParseNotification([]byte(other))
		if err != nil {
			t.Fatal(err)
		}
		if n.DedupKey() == key {
			t.Errorf("%s has the same key as a different notification", other)
		}
	}
	same, err := intercom.ParseNotification([]byte(strings.Replace(body, "%d", "1795000299", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if same.DedupKey() != key {
		t.Error("the same topic, item and created_at give a different key")
	}
	// Numeric item ids are read as their decimal text.
	numeric, err := intercom.ParseNotification([]byte(strings.Replace(strings.Replace(body, "%d", "1795000299", 1), `"215471883220312"`, "215471883220312", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if numeric.DedupKey() != key {
		t.Error("a numeric item id gives another key than the same id as a string")
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "webhooks", "user_created.json"))
	if err != nil {
		b.Fatal(err)
	}
	header := sign("secret", string(body))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !intercom.VerifySignature([]byte("secret"), body, header) {
			b.Fatal("not verified")
		}
	}
}
