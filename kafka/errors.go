package kafka

import "errors"

var (
	// ErrFrameTooLarge is returned for a frame larger than the configured maximum.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformed is returned for bytes that do not parse as the Kafka protocol.
	ErrMalformed = errors.New("malformed kafka frame")
	// ErrUnknownKey is returned for an API key kmsg does not know.
	ErrUnknownKey = errors.New("unknown api key")
	// ErrUnsupportedVersion is returned for a version the proxy cannot parse.
	ErrUnsupportedVersion = errors.New("unsupported api version")
	// ErrUnroutable is returned for a request of a key the proxy does not serve.
	ErrUnroutable = errors.New("api key not served by the proxy")
	// ErrBackendMismatch is returned when a backend answers out of order.
	ErrBackendMismatch = errors.New("backend response does not match request")
	// ErrNoBroker is returned when no backend broker is known for a request.
	ErrNoBroker = errors.New("no backend broker available")
	// ErrProducerIDLimit is returned when a virtual producer id cannot be
	// mapped: the connection used too many, or the mapping table is full of
	// mappings in use.
	ErrProducerIDLimit = errors.New("producer id limit reached")
	// ErrProduceInterrupted ends a client connection that sends a Produce
	// after a broker connection of it broke with a Produce in flight: the
	// proxy must not let a later batch overtake one whose fate is unknown
	// (see upstream.produceInflight).
	ErrProduceInterrupted = errors.New("produce interrupted")
	// ErrClosed is returned for work on a closed connection.
	ErrClosed = errors.New("connection closed")
	// ErrPanic is what a connection is closed with when serving it panicked.
	ErrPanic = errors.New("panic serving connection")
	// ErrIdle is what a connection is closed with after ConnectionsMaxIdle
	// without a request.
	ErrIdle = errors.New("connection idle")
	// ErrFrameTimeout is returned for a request that did not arrive whole
	// within FrameReadTimeout of its first byte.
	ErrFrameTimeout = errors.New("request read timed out")
)
