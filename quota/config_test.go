package quota

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Config){
		func(c *Config) { c.ReportInterval = 0 },
		func(c *Config) { c.Lease = c.ReportInterval },
		func(c *Config) { c.SafeFor = -1 },
		func(c *Config) { c.IdleAfter = time.Second },
		func(c *Config) { c.Headroom = math.NaN() },
		func(c *Config) { c.LeaseDrift = 0.9 },
		func(c *Config) { c.SatGrow = 0.5 },
		func(c *Config) { c.WantsUpWeight = 0 },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("config %+v: %v, want ErrInvalid", c, err)
		}
		if _, err := NewLimiter(c, 1, nil); err == nil {
			t.Error("NewLimiter took an invalid config")
		}
		if _, err := NewAllocator(c, 1, t0); err == nil {
			t.Error("NewAllocator took an invalid config")
		}
	}
}
