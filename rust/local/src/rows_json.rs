//! Arrow record batches as JSON lines: one object per row, column names as keys, explicit nulls.
//!
//! How each type is written: integers and finite floats as numbers (non-finite floats as null);
//! decimals as numbers with their scale (`12.30`); strings as strings; binary as lowercase hex
//! strings; Date32/Date64 as `YYYY-MM-DD`; timestamps as `YYYY-MM-DDTHH:MM:SS[.fraction]` with a
//! trailing `Z` when the type has a time zone (the instant, written in UTC); Time32/Time64 as
//! `HH:MM:SS[.fraction]`; durations as integers of their unit; lists as arrays; structs as
//! objects; maps as objects (keys written as strings); dictionaries as their values. Other types
//! (intervals, unions, run-end encoded) are refused with an error naming the type.

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

type Result<T> = std::result::Result<T, String>;

/// Appends one line per row of `batch` to `out`.
pub(crate) fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let schema = batch.schema();
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| serde_json::to_string(f.name()).map_err(|e| e.to_string()))
        .collect::<Result<_>>()?;
    for row in 0..batch.num_rows() {
        out.push(b'{');
        for (c, column) in batch.columns().iter().enumerate() {
            if c > 0 {
                out.push(b',');
            }
            out.extend_from_slice(names[c].as_bytes());
            out.push(b':');
            write_value(column.as_ref(), row, out)?;
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(())
}

fn num(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'"');
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil(days);
    let _ = write!(out, "\"{y:04}-{m:02}-{d:02}\"");
}

/// `HH:MM:SS` and the fraction: none, 3, 6 or 9 digits, the fewest that show every non-zero digit.
fn time_of_day(out: &mut Vec<u8>, secs: i64, nanos: i64) {
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if nanos == 0 {
    } else if nanos % 1_000_000 == 0 {
        let _ = write!(out, ".{:03}", nanos / 1_000_000);
    } else if nanos % 1_000 == 0 {
        let _ = write!(out, ".{:06}", nanos / 1_000);
    } else {
        let _ = write!(out, ".{nanos:09}");
    }
}

fn per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

fn timestamp(out: &mut Vec<u8>, v: i64, unit: &TimeUnit, utc: bool) {
    let per = per_second(unit);
    let secs = v.div_euclid(per);
    let nanos = v.rem_euclid(per) * (1_000_000_000 / per);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let _ = write!(out, "\"{y:04}-{m:02}-{d:02}T");
    time_of_day(out, secs.rem_euclid(86_400), nanos);
    out.extend_from_slice(if utc { b"Z\"" } else { b"\"" });
}

fn time(out: &mut Vec<u8>, v: i64, unit: &TimeUnit) {
    let per = per_second(unit);
    out.push(b'"');
    time_of_day(out, v.div_euclid(per), v.rem_euclid(per) * (1_000_000_000 / per));
    out.push(b'"');
}

/// A decimal's unscaled digits with the point placed by `scale`.
fn decimal(out: &mut Vec<u8>, unscaled: String, scale: i8) {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled.as_str()),
    };
    if neg {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        if digits != "0" {
            out.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let _ = write!(out, "{int}.{frac}");
}

fn float(out: &mut Vec<u8>, v: f64) -> Result<()> {
    if v.is_finite() {
        serde_json::to_writer(&mut *out, &v).map_err(|e| e.to_string())
    } else {
        out.extend_from_slice(b"null");
        Ok(())
    }
}

fn list(out: &mut Vec<u8>, items: &dyn Array) -> Result<()> {
    out.push(b'[');
    for i in 0..items.len() {
        if i > 0 {
            out.push(b',');
        }
        write_value(items, i, out)?;
    }
    out.push(b']');
    Ok(())
}

/// Writes element `i` of `a`.
fn write_value(a: &dyn Array, i: usize, out: &mut Vec<u8>) -> Result<()> {
    if a.is_null(i) && !matches!(a.data_type(), DataType::Dictionary(..)) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    macro_rules! prim {
        ($t:ty) => {
            num(out, a.as_primitive::<$t>().value(i))
        };
    }
    match a.data_type() {
        DataType::Null => out.extend_from_slice(b"null"),
        DataType::Boolean => out.extend_from_slice(if a.as_boolean().value(i) { b"true" } else { b"false" }),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float16 => float(out, f64::from(a.as_primitive::<Float16Type>().value(i).to_f32()))?,
        DataType::Float32 => {
            let v = a.as_primitive::<Float32Type>().value(i);
            if v.is_finite() {
                serde_json::to_writer(&mut *out, &v).map_err(|e| e.to_string())?
            } else {
                out.extend_from_slice(b"null")
            }
        }
        DataType::Float64 => float(out, a.as_primitive::<Float64Type>().value(i))?,
        DataType::Decimal32(_, s) => decimal(out, a.as_primitive::<Decimal32Type>().value(i).to_string(), *s),
        DataType::Decimal64(_, s) => decimal(out, a.as_primitive::<Decimal64Type>().value(i).to_string(), *s),
        DataType::Decimal128(_, s) => decimal(out, a.as_primitive::<Decimal128Type>().value(i).to_string(), *s),
        DataType::Decimal256(_, s) => decimal(out, a.as_primitive::<Decimal256Type>().value(i).to_string(), *s),
        DataType::Utf8 => string(out, a.as_string::<i32>().value(i))?,
        DataType::LargeUtf8 => string(out, a.as_string::<i64>().value(i))?,
        DataType::Utf8View => string(out, a.as_string_view().value(i))?,
        DataType::Binary => hex(out, a.as_binary::<i32>().value(i)),
        DataType::LargeBinary => hex(out, a.as_binary::<i64>().value(i)),
        DataType::BinaryView => hex(out, a.as_binary_view().value(i)),
        DataType::FixedSizeBinary(_) => hex(out, a.as_fixed_size_binary().value(i)),
        DataType::Date32 => date(out, i64::from(a.as_primitive::<Date32Type>().value(i))),
        DataType::Date64 => date(out, a.as_primitive::<Date64Type>().value(i).div_euclid(86_400_000)),
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
            };
            timestamp(out, v, unit, tz.is_some())
        }
        DataType::Time32(unit) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<Time32SecondType>().value(i),
                _ => a.as_primitive::<Time32MillisecondType>().value(i),
            };
            time(out, i64::from(v), unit)
        }
        DataType::Time64(unit) => {
            let v = match unit {
                TimeUnit::Microsecond => a.as_primitive::<Time64MicrosecondType>().value(i),
                _ => a.as_primitive::<Time64NanosecondType>().value(i),
            };
            time(out, v, unit)
        }
        DataType::Duration(unit) => num(
            out,
            match unit {
                TimeUnit::Second => a.as_primitive::<DurationSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<DurationMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<DurationMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<DurationNanosecondType>().value(i),
            },
        ),
        DataType::List(_) => list(out, a.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(out, a.as_list::<i64>().value(i).as_ref())?,
        DataType::ListView(_) => list(out, a.as_list_view::<i32>().value(i).as_ref())?,
        DataType::LargeListView(_) => list(out, a.as_list_view::<i64>().value(i).as_ref())?,
        DataType::FixedSizeList(_, _) => list(out, a.as_fixed_size_list().value(i).as_ref())?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            out.push(b'{');
            for (c, f) in fields.iter().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                string(out, f.name())?;
                out.push(b':');
                write_value(s.column(c).as_ref(), i, out)?;
            }
            out.push(b'}');
        }
        DataType::Map(_, _) => {
            let entries = a.as_map().value(i);
            out.push(b'{');
            for e in 0..entries.len() {
                if e > 0 {
                    out.push(b',');
                }
                let key = entries.column(0);
                match key.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => write_value(key.as_ref(), e, out)?,
                    _ => {
                        // Keys that are written as strings (dates, binary, dictionary strings)
                        // stay as they are; numbers and the like become strings.
                        let mut k = Vec::new();
                        write_value(key.as_ref(), e, &mut k)?;
                        if k.first() == Some(&b'"') {
                            out.extend_from_slice(&k);
                        } else {
                            string(out, &String::from_utf8_lossy(&k))?;
                        }
                    }
                }
                out.push(b':');
                write_value(entries.column(1).as_ref(), e, out)?;
            }
            out.push(b'}');
        }
        DataType::Dictionary(key, _) => {
            let d = a.as_any_dictionary();
            let keys = d.keys();
            if keys.is_null(i) {
                out.extend_from_slice(b"null");
            } else {
                // One key, read by its type (normalized_keys() would convert the whole column).
                let k = match key.as_ref() {
                    DataType::Int8 => keys.as_primitive::<Int8Type>().value(i) as i64,
                    DataType::Int16 => keys.as_primitive::<Int16Type>().value(i) as i64,
                    DataType::Int32 => keys.as_primitive::<Int32Type>().value(i) as i64,
                    DataType::Int64 => keys.as_primitive::<Int64Type>().value(i),
                    DataType::UInt8 => keys.as_primitive::<UInt8Type>().value(i) as i64,
                    DataType::UInt16 => keys.as_primitive::<UInt16Type>().value(i) as i64,
                    DataType::UInt32 => keys.as_primitive::<UInt32Type>().value(i) as i64,
                    DataType::UInt64 => i64::try_from(keys.as_primitive::<UInt64Type>().value(i)).unwrap_or(-1),
                    other => return Err(format!("dictionary keys of type {other} are not supported")),
                };
                let values = d.values();
                match usize::try_from(k).ok().filter(|k| *k < values.len()) {
                    Some(k) => write_value(values.as_ref(), k, out)?,
                    None => return Err(format!("dictionary key {k} is out of range ({} values)", values.len())),
                }
            }
        }
        other => return Err(format!("Arrow type {other} is not supported by the local server")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Decimal128Array, DictionaryArray, Int32Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::{Field, Schema};

    fn rows(columns: Vec<(&str, ArrayRef)>) -> String {
        let schema = Arc::new(Schema::new(columns.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>()));
        let batch = RecordBatch::try_new(schema, columns.into_iter().map(|(_, c)| c).collect()).unwrap();
        let mut out = Vec::new();
        write_rows(&batch, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dates_times_decimals_and_dictionaries() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_000), (2022, 1, 8));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
        let ts = TimestampMillisecondArray::from(vec![Some(0), Some(1_700_000_000_123), Some(-1), None]);
        let dec = Decimal128Array::from(vec![Some(1230), Some(-5), Some(0), None]).with_precision_and_scale(10, 2).unwrap();
        let dict: DictionaryArray<arrow_array::types::Int32Type> = vec![Some("a"), Some("b"), None, Some("a")].into_iter().collect();
        let got = rows(vec![
            ("ts", Arc::new(ts.clone()) as ArrayRef),
            ("utc", Arc::new(ts.with_timezone("UTC")) as ArrayRef),
            ("dec", Arc::new(dec) as ArrayRef),
            ("dict", Arc::new(dict) as ArrayRef),
            ("n", Arc::new(Int32Array::from(vec![1, 2, 3, 4])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["q\"", "", "é", "\n"])) as ArrayRef),
        ]);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], r#"{"ts":"1970-01-01T00:00:00","utc":"1970-01-01T00:00:00Z","dec":12.30,"dict":"a","n":1,"s":"q\""}"#);
        assert_eq!(lines[1], r#"{"ts":"2023-11-14T22:13:20.123","utc":"2023-11-14T22:13:20.123Z","dec":-0.05,"dict":"b","n":2,"s":""}"#);
        assert_eq!(lines[2], r#"{"ts":"1969-12-31T23:59:59.999","utc":"1969-12-31T23:59:59.999Z","dec":0.00,"dict":null,"n":3,"s":"é"}"#);
        assert_eq!(lines[3], r#"{"ts":null,"utc":null,"dec":null,"dict":"a","n":4,"s":"\n"}"#);
    }

    #[test]
    fn map_keys_are_strings_written_once() {
        use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder, StringDictionaryBuilder};
        use arrow_array::types::Int32Type;
        // Integer keys become strings; keys that are already written as strings (here
        // dictionary-encoded) are not quoted a second time.
        let mut ints = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        ints.keys().append_value(1);
        ints.values().append_value("one");
        ints.keys().append_value(-2);
        ints.values().append_null();
        ints.append(true).unwrap();
        let mut dict = MapBuilder::new(None, StringDictionaryBuilder::<Int32Type>::new(), Int32Builder::new());
        dict.keys().append_value("a");
        dict.values().append_value(7);
        dict.append(true).unwrap();
        let got = rows(vec![("ints", Arc::new(ints.finish()) as ArrayRef), ("dict", Arc::new(dict.finish()) as ArrayRef)]);
        assert_eq!(got, "{\"ints\":{\"1\":\"one\",\"-2\":null},\"dict\":{\"a\":7}}\n");
    }
}
