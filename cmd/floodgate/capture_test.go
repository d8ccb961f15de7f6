package main

import (
	"time"

	"github.com/google/gopacket"
)

func gopacketCaptureInfo(t time.Time, n, orig int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: orig}
}
