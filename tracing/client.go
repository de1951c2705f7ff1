package tracing

import "github.com/twmb/franz-go/pkg/kgo"

// Client is what an interceptor learns about the franz-go client it was
// added to, in kgo.HookNewClient: the tracing hooks and the audit hooks
// name their events and counts after it and start their own producers on
// its seed brokers.
type Client struct {
	ID    string   // kgo.ClientID
	Group string   // kgo.ConsumerGroup, or "direct:<ID>" for a client without a group
	Seeds []string // kgo.SeedBrokers
}

// ClientOf reads cl's identity (OptValue reflects: call it once per client).
func ClientOf(cl *kgo.Client) Client {
	var c Client
	c.ID, _ = cl.OptValue(kgo.ClientID).(string)
	if c.Group, _ = cl.OptValue(kgo.ConsumerGroup).(string); c.Group == "" {
		c.Group = "direct:" + c.ID
	}
	c.Seeds, _ = cl.OptValue(kgo.SeedBrokers).([]string)
	return c
}
