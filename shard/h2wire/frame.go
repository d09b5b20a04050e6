package h2wire

// Frame layout, types, flags, settings and error codes of RFC 9113.

// HeaderLen is the length of a frame header (§4.1).
const HeaderLen = 9

// ClientPreface is what a client sends first (§3.4), before its SETTINGS.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// FrameType is a frame's type (§6).
type FrameType uint8

// The frame types of RFC 9113.
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
	numFrameTypes               = 10
)

var frameNames = [numFrameTypes]string{"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"}

func (t FrameType) String() string {
	if t < numFrameTypes {
		return frameNames[t]
	}
	return "UNKNOWN"
}

// Frame flags (§6).
const (
	FlagEndStream  = 0x1 // DATA, HEADERS
	FlagAck        = 0x1 // SETTINGS, PING
	FlagEndHeaders = 0x4 // HEADERS, CONTINUATION
	FlagPadded     = 0x8 // DATA, HEADERS
	FlagPriority   = 0x20
)

// Setting identifiers (§6.5.2).
const (
	SettingHeaderTableSize      = 0x1
	SettingEnablePush           = 0x2
	SettingMaxConcurrentStreams = 0x3
	SettingInitialWindowSize    = 0x4
	SettingMaxFrameSize         = 0x5
	SettingMaxHeaderListSize    = 0x6
)

// Protocol limits (§4.2, §6.5.2, §6.9).
const (
	DefaultMaxFrameSize = 16384
	MaxFrameSizeLimit   = 1<<24 - 1
	DefaultWindow       = 65535
	MaxWindow           = 1<<31 - 1
)

// ErrCode is an error code of RST_STREAM and GOAWAY (§7).
type ErrCode uint32

// The error codes of RFC 9113 §7.
const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
	NumErrCodes                       = 14
)

var errCodeNames = [NumErrCodes]string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}

func (c ErrCode) String() string {
	if c < NumErrCodes {
		return errCodeNames[c]
	}
	return "UNKNOWN"
}

// FrameHeader is a frame's first nine bytes, decoded.
type FrameHeader struct {
	Length   uint32
	Type     FrameType
	Flags    uint8
	StreamID uint32 // the reserved bit cleared
}

// ParseHeader decodes the frame header at the start of b, which holds at
// least HeaderLen bytes.
func ParseHeader(b []byte) FrameHeader {
	_ = b[8]
	return FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    b[4],
		StreamID: (uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])) & MaxWindow,
	}
}

// AppendHeader appends a frame header.
func AppendHeader(dst []byte, length uint32, t FrameType, flags uint8, stream uint32) []byte {
	return append(dst, byte(length>>16), byte(length>>8), byte(length), byte(t), flags,
		byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
}

// PutStreamID overwrites the stream identifier of the frame header at
// the start of b (a prepared frame sent on another stream).
func PutStreamID(b []byte, stream uint32) {
	b[5], b[6], b[7], b[8] = byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream)
}

// Uint32 reads a big-endian 32-bit value.
func Uint32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// AppendUint32 appends v big-endian.
func AppendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// AppendSetting appends one setting of a SETTINGS payload.
func AppendSetting(dst []byte, id uint16, v uint32) []byte {
	return AppendUint32(append(dst, byte(id>>8), byte(id)), v)
}

// AppendRSTStream appends an RST_STREAM frame.
func AppendRSTStream(dst []byte, stream uint32, code ErrCode) []byte {
	return AppendUint32(AppendHeader(dst, 4, FrameRSTStream, 0, stream), uint32(code))
}

// AppendGoAway appends a GOAWAY frame naming the last stream processed.
func AppendGoAway(dst []byte, last uint32, code ErrCode) []byte {
	return AppendUint32(AppendUint32(AppendHeader(dst, 8, FrameGoAway, 0, 0), last), uint32(code))
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame.
func AppendWindowUpdate(dst []byte, stream, increment uint32) []byte {
	return AppendUint32(AppendHeader(dst, 4, FrameWindowUpdate, 0, stream), increment)
}
