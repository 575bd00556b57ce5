// Package strictjson reads JSON the way file formats need it read: one
// object and nothing after it, duplicate keys refused (encoding/json keeps
// the last one silently), numbers kept as written, integers accepted only as
// plain digits, and excerpts of bad input short enough for an error message.
//
// It owns JSON syntax only. It must not know any file format (PEFT's
// adapter_config.json, safetensors headers): callers give the values their
// meaning and their error context.
package strictjson
