// Package protocol is Semko's contract: the MQTT topics devices and the
// backend speak, the versioned JSON payloads on them, and the keypad's serial
// line protocol. Every part imports it; it imports only the standard library.
//
// The full description, written for someone building a device or a consumer
// from this page alone, is in README.md beside this file.
package protocol
