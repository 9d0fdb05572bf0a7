//! Record conversion: JSON validation + compaction, PROTO decoding to JSON via prost-reflect.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// How records of a stream are converted to JSON lines.
pub(crate) enum RecordFormat {
    Json,
    Proto(MessageDescriptor),
}

const SERIALIZE_OPTIONS: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .skip_default_fields(false)
    .stringify_64_bit_integers(false)
    .use_enum_numbers(false);

fn collect_type_names(d: &DescriptorProto, out: &mut Vec<String>, proto3_optional: &mut bool) {
    for f in &d.field {
        if let Some(t) = &f.type_name {
            out.push(t.clone());
        }
        if f.proto3_optional == Some(true) {
            *proto3_optional = true;
        }
    }
    for n in &d.nested_type {
        collect_type_names(n, out, proto3_optional);
    }
}

/// Builds a message descriptor from a serialized `google.protobuf.DescriptorProto`. The message
/// must be self-contained: its fields may only reference itself and its nested types/enums.
pub(crate) fn build_descriptor(bytes: &[u8]) -> Result<MessageDescriptor, String> {
    let dp = DescriptorProto::decode(bytes)
        .map_err(|e| format!("descriptor_proto is not a valid google.protobuf.DescriptorProto: {e}"))?;
    let name = match dp.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => return Err("descriptor_proto has no message name".to_string()),
    };
    let mut type_names = Vec::new();
    let mut proto3_optional = false;
    collect_type_names(&dp, &mut type_names, &mut proto3_optional);
    // Fully-qualified references (".pkg.Msg.Nested") tell us the package the message was
    // compiled in; reproduce it so that they resolve.
    let mut package: Option<String> = None;
    for t in &type_names {
        if let Some(stripped) = t.strip_prefix('.') {
            let comps: Vec<&str> = stripped.split('.').collect();
            if let Some(k) = comps.iter().position(|c| *c == name) {
                if k > 0 {
                    package = Some(comps[..k].join("."));
                }
                break;
            }
        }
    }
    let file = FileDescriptorProto {
        name: Some("zerobus_local_record.proto".to_string()),
        package: package.clone(),
        message_type: vec![dp],
        syntax: Some(if proto3_optional { "proto3" } else { "proto2" }.to_string()),
        ..Default::default()
    };
    let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
        .map_err(|e| {
            format!(
                "invalid descriptor_proto (it must be self-contained: only nested message/enum types, \
                 no references to other messages or enums): {e}"
            )
        })?;
    let full_name = match &package {
        Some(p) => format!("{p}.{name}"),
        None => name.clone(),
    };
    pool.get_message_by_name(&full_name)
        .ok_or_else(|| format!("descriptor_proto: message {full_name} not found after building"))
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Copies `s` (valid JSON) into `out` without insignificant whitespace.
fn minify_into(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    let mut i = 0;
    let mut start = 0;
    while i < n {
        let b = s[i];
        if b == b'"' {
            i += 1;
            loop {
                match memchr::memchr2(b'"', b'\\', &s[i..]) {
                    Some(p) => {
                        i += p;
                        if s[i] == b'\\' {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    None => {
                        i = n;
                        break;
                    }
                }
            }
        } else if is_ws(b) {
            out.extend_from_slice(&s[start..i]);
            i += 1;
            while i < n && is_ws(s[i]) {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    if start < n {
        out.extend_from_slice(&s[start..n]);
    }
}

/// Validates a JSON record (must be an object) and appends it compactly plus '\n'.
pub(crate) fn append_json(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|e| format!("invalid JSON: {e}"))?;
    match s.bytes().find(|b| !is_ws(*b)) {
        Some(b'{') => {}
        _ => return Err("JSON record is not an object".to_string()),
    }
    out.reserve(s.len() + 1);
    minify_into(out, s.as_bytes());
    out.push(b'\n');
    Ok(())
}

/// Decodes a protobuf record and appends it as a JSON object line.
pub(crate) fn append_proto(out: &mut Vec<u8>, desc: &MessageDescriptor, bytes: &[u8]) -> Result<(), String> {
    let msg = DynamicMessage::decode(desc.clone(), bytes)
        .map_err(|e| format!("cannot decode protobuf record as {}: {e}", desc.full_name()))?;
    let mark = out.len();
    let mut ser = serde_json::Serializer::new(&mut *out);
    if let Err(e) = msg.serialize_with_options(&mut ser, &SERIALIZE_OPTIONS) {
        out.truncate(mark);
        return Err(format!("cannot convert protobuf record to JSON: {e}"));
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minify(s: &str) -> String {
        let mut v = Vec::new();
        append_json(&mut v, s).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn json_minify() {
        assert_eq!(minify(r#"{"a": 1, "b" : "x y\" z", "c": [1, 2 ]}"#), "{\"a\":1,\"b\":\"x y\\\" z\",\"c\":[1,2]}\n");
        assert_eq!(minify("\n {\"a\\\\\":\" \"}\t"), "{\"a\\\\\":\" \"}\n");
        let mut v = Vec::new();
        assert!(append_json(&mut v, "[1]").unwrap_err().contains("not an object"));
        assert!(append_json(&mut v, "{").unwrap_err().starts_with("invalid JSON"));
        assert!(append_json(&mut v, "").unwrap_err().starts_with("invalid JSON"));
        assert!(v.is_empty());
    }
}
