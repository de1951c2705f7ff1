package broker

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kobs-dev/kobs/broker/wire"
)

// AlterConfigs: v0-2
//
// Behavior:
//   - Topic resources: the given set REPLACES all overrides of the topic
//     (the legacy non-incremental semantics); values are validated first
//     (INVALID_CONFIG) and applied to the partition logs at once.
//   - Broker resources are refused (INVALID_REQUEST): dynamic broker
//     configs do not exist in kobs yet.
//   - ValidateOnly checks and changes nothing.
//
// Version notes: v2 flexible.
func (b *Broker) handleAlterConfigs(r *wire.Request) {
	req := r.Msg.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		code, msg := b.alterTopicConfigs(rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(map[string]string) (map[string]string, error) {
			next := map[string]string{}
			for _, c := range rr.Configs {
				if c.Value != nil {
					next[c.Name] = *c.Value
				}
			}
			return next, nil
		})
		if code != 0 {
			sr.ErrorCode, sr.ErrorMessage = code, strp(msg)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	r.Respond(resp)
}

// IncrementalAlterConfigs: v0-1
//
// Behavior:
//   - SET, DELETE (back to the default), APPEND and SUBTRACT (list configs
//     such as cleanup.policy) applied to the topic's overrides, validated,
//     then applied to the partition logs. A config named twice for one
//     resource is INVALID_REQUEST.
//   - Broker resources are refused as in AlterConfigs.
//
// Version notes: v1 flexible.
func (b *Broker) handleIncrementalAlterConfigs(r *wire.Request) {
	req := r.Msg.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		code, msg := b.alterTopicConfigs(rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(cur map[string]string) (map[string]string, error) {
			next := cloneMap(cur)
			seen := map[string]bool{}
			for _, c := range rr.Configs {
				if seen[c.Name] {
					return nil, fmt.Errorf("%w: config %s named twice", errBadAlter, c.Name)
				}
				seen[c.Name] = true
				def, ok := topicConfigByName[c.Name]
				if !ok {
					return nil, fmt.Errorf("unknown topic config %q", c.Name)
				}
				val := derefOr(c.Value, "")
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if c.Value == nil {
						return nil, fmt.Errorf("%s: SET needs a value", c.Name)
					}
					next[c.Name] = val
				case kmsg.IncrementalAlterConfigOpDelete:
					delete(next, c.Name)
				case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
					if def.typ != typeList {
						return nil, fmt.Errorf("%w: %s is not a list config", errBadAlter, c.Name)
					}
					next[c.Name] = alterList(b.cfg.resolved(cur, c.Name), val, c.Op == kmsg.IncrementalAlterConfigOpAppend)
				default:
					return nil, fmt.Errorf("%w: unknown operation %d", errBadAlter, c.Op)
				}
			}
			return next, nil
		})
		if code != 0 {
			sr.ErrorCode, sr.ErrorMessage = code, strp(msg)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	r.Respond(resp)
}

var errBadAlter = errors.New("invalid request")

// resolved is the effective value of one topic config given overrides.
func (c *Config) resolved(overrides map[string]string, name string) string {
	for _, rc := range c.resolveTopicConfigs(overrides) {
		if rc.def.name == name {
			return rc.value
		}
	}
	return ""
}

func alterList(cur, vals string, add bool) string {
	var items []string
	for _, s := range strings.Split(cur, ",") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	for _, v := range strings.Split(vals, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		idx := -1
		for i, it := range items {
			if it == v {
				idx = i
			}
		}
		switch {
		case add && idx < 0:
			items = append(items, v)
		case !add && idx >= 0:
			items = append(items[:idx], items[idx+1:]...)
		}
	}
	return strings.Join(items, ",")
}

// alterTopicConfigs computes a topic's new overrides with next, validates
// them, and unless validateOnly stores them and reconfigures the logs.
func (b *Broker) alterTopicConfigs(typ kmsg.ConfigResourceType, name string, validateOnly bool, next func(map[string]string) (map[string]string, error)) (int16, string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		return kerr.InvalidRequest.Code, "dynamic broker configs are not supported; edit server.properties and restart"
	default:
		return kerr.InvalidRequest.Code, "unsupported resource type " + typ.String()
	}
	t := b.pub.Load().Topic(name)
	if t == nil {
		return kerr.UnknownTopicOrPartition.Code, "topic " + name + " does not exist"
	}
	cfgs, err := next(maps.Clone(t.Configs))
	if err == nil {
		err = validateTopicConfigs(cfgs)
	}
	if err != nil {
		if errors.Is(err, errBadAlter) {
			return kerr.InvalidRequest.Code, err.Error()
		}
		return kerr.InvalidConfig.Code, err.Error()
	}
	if validateOnly {
		return 0, ""
	}
	if b.ctl == nil {
		return kafkaCode(errNoController)
	}
	// The whole new set of overrides replaces the old one; every replica
	// applies it to its logs when the image arrives.
	changes := make(map[string]*string, len(cfgs))
	for k, v := range cfgs {
		changes[k] = &v
	}
	ctx, cancel := b.adminCtx(0)
	defer cancel()
	if err := b.ctl.AlterConfigs(ctx, name, changes, true); err != nil {
		return kafkaCode(err)
	}
	b.log.Info("altered topic configs", "topic", name, "overrides", cfgs)
	return 0, ""
}
