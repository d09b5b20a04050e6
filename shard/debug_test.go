package shard

// The lifecycle's assertions (phases only move forward, counts never go
// below zero) are on in every test of this package.
func init() { debugChecks = true }
