package main

import (
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestServeFetchSessionSlots: --kafka-fetch-session-slots (and its config
// key) reaches kafka.Limits: Kafka's default 1000 when unset, the count
// given, none (negative in kafka.Limits) for 0, as Kafka reads 0; a
// negative count is refused.
func TestServeFetchSessionSlots(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
		want int
	}{
		{"", nil, kafka.DefaultFetchSessionSlots},
		{`{"kafka_fetch_session_slots": 50}`, nil, 50},
		{`{"kafka_fetch_session_slots": 50}`, []string{"--kafka-fetch-session-slots", "70"}, 70},
		{"", []string{"--kafka-fetch-session-slots", "0"}, -1},
	} {
		nc, err := serveNodeConfig(t, tc.file, tc.args...)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.file, tc.args, err)
		}
		if got := nc.KafkaLimits.FetchSessionSlots; got != tc.want {
			t.Errorf("%s %v: fetch session slots %d, want %d", tc.file, tc.args, got, tc.want)
		}
	}
	if _, err := serveNodeConfig(t, "", "--kafka-fetch-session-slots", "-3"); err == nil || !strings.Contains(err.Error(), "--kafka-fetch-session-slots") {
		t.Fatalf("negative slots: %v, want an error naming the flag", err)
	}
}

// TestServeBackendFetchSessions: --kafka-backend-fetch-sessions (and its
// config key) reaches kafka.Limits: on (0) unless set false (negative).
func TestServeBackendFetchSessions(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
		want int
	}{
		{"", nil, 0},
		{`{"kafka_backend_fetch_sessions": false}`, nil, -1},
		{`{"kafka_backend_fetch_sessions": false}`, []string{"--kafka-backend-fetch-sessions"}, 0},
		{"", []string{"--kafka-backend-fetch-sessions=false"}, -1},
	} {
		nc, err := serveNodeConfig(t, tc.file, tc.args...)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.file, tc.args, err)
		}
		if got := nc.KafkaLimits.BackendFetchSessions; got != tc.want {
			t.Errorf("%s %v: backend fetch sessions %d, want %d", tc.file, tc.args, got, tc.want)
		}
	}
}
