// Package audit holds the audit interceptors, audit records and the reconciler
// that compares producer, broker and consumer counts per time bucket.
package audit
