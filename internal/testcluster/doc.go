// Package testcluster starts real kobs brokers on free loopback ports for tests.
package testcluster
