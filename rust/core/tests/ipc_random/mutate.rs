//! Mutations of valid streams (bytes and whole messages), and the generator of one case.

#[allow(unused_imports)]
use super::*;

pub(crate) fn mutate_bytes(rng: &mut Rng, buf: &mut Vec<u8>, log: &mut String, other: &[u8]) {
    let n = buf.len();
    match rng.below(11) {
        0 => {
            let at = rng.range(0..n + 1);
            buf.truncate(at);
            let _ = write!(log, " truncate@{at}");
        }
        1 => {
            for _ in 0..rng.range(1..9) {
                if n > 0 {
                    let at = rng.below(n);
                    let bit = rng.below(8);
                    buf[at] ^= 1 << bit;
                    let _ = write!(log, " flip@{at}.{bit}");
                }
            }
        }
        2 => {
            for _ in 0..rng.range(1..9) {
                if n > 0 {
                    let at = rng.below(n);
                    buf[at] = rng.next() as u8;
                    let _ = write!(log, " byte@{at}={:#x}", buf[at]);
                }
            }
        }
        3 | 4 => {
            if n >= 4 {
                let at = if rng.chance(70) { rng.below(n / 4) * 4 } else { rng.below(n - 3) };
                let v = rand_i32(rng);
                buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " i32@{at}={v}");
            }
        }
        5 => {
            if n >= 8 {
                let at = if rng.chance(70) { rng.below(n / 8) * 8 } else { rng.below(n - 7) };
                let v = rand_i64(rng);
                buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " i64@{at}={v}");
            }
        }
        6 => {
            let at = rng.range(0..n + 1);
            let len = rng.range(1..33);
            let junk = rng.bytes(len);
            buf.splice(at..at, junk);
            let _ = write!(log, " insert@{at}+{len}");
        }
        7 => {
            if n > 0 {
                let a = rng.below(n);
                let b = (a + rng.range(1..65)).min(n);
                buf.drain(a..b);
                let _ = write!(log, " delete@{a}..{b}");
            }
        }
        8 => {
            if n > 0 {
                let a = rng.below(n);
                let b = (a + rng.range(1..129)).min(n);
                let chunk = buf[a..b].to_vec();
                let at = rng.range(0..n + 1);
                buf.splice(at..at, chunk);
                let _ = write!(log, " dup{a}..{b}@{at}");
            }
        }
        9 => {
            if !other.is_empty() {
                let a = rng.below(other.len());
                let b = (a + rng.range(1..257)).min(other.len());
                let at = rng.range(0..n + 1);
                buf.splice(at..at, other[a..b].iter().copied());
                let _ = write!(log, " splice-other{a}..{b}@{at}");
            }
        }
        _ => {
            let len = rng.range(1..33);
            buf.extend(rng.bytes(len));
            let _ = write!(log, " append+{len}");
        }
    }
}

/// Message-level edits of a well-formed stream.
pub(crate) fn mutate_messages(rng: &mut Rng, s: &Sample, other: &Sample, log: &mut String) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = spans(&s.bytes).into_iter().map(|r| s.bytes[r].to_vec()).collect();
    let other_parts: Vec<Vec<u8>> = spans(&other.bytes).into_iter().map(|r| other.bytes[r].to_vec()).collect();
    for _ in 0..rng.range(1..4) {
        let n = parts.len();
        if n == 0 {
            break;
        }
        match rng.below(9) {
            0 => {
                let i = rng.below(n);
                parts.remove(i);
                let _ = write!(log, " drop#{i}");
            }
            1 => {
                let i = rng.below(n);
                let at = rng.range(0..n + 1);
                let p = parts[i].clone();
                parts.insert(at, p);
                let _ = write!(log, " dup#{i}@{at}");
            }
            2 => {
                let (i, j) = (rng.below(n), rng.below(n));
                parts.swap(i, j);
                let _ = write!(log, " swap#{i}#{j}");
            }
            3 => {
                parts.reverse();
                let _ = write!(log, " reverse");
            }
            4 => {
                let i = rng.below(other_parts.len());
                let at = rng.range(0..n + 1);
                parts.insert(at, other_parts[i].clone());
                let _ = write!(log, " insert-{}#{i}@{at}", other.name);
            }
            5 => {
                // forge the length prefix (with or without continuation marker)
                let i = rng.below(n);
                let p = &mut parts[i];
                let off = if p.len() >= 8 && p[..4] == [0xFF; 4] { 4 } else { 0 };
                if p.len() < off + 4 {
                    continue;
                }
                let orig = i32::from_le_bytes(p[off..off + 4].try_into().unwrap());
                let v = if rng.chance(50) { rand_i32(rng) } else { orig.wrapping_add(rng.range(0..17) as i32 - 8) };
                p[off..off + 4].copy_from_slice(&v.to_le_bytes());
                let _ = write!(log, " len#{i}={v}");
            }
            6 => {
                // toggle legacy / continuation framing
                let i = rng.below(n);
                let p = &mut parts[i];
                if p.len() >= 8 && p[..4] == [0xFF; 4] {
                    p.drain(..4);
                } else {
                    p.splice(..0, [0xFF; 4]);
                }
                let _ = write!(log, " reframe#{i}");
            }
            7 => {
                let i = rng.below(n);
                let cut = rng.range(1..parts[i].len().max(2));
                parts[i].truncate(cut);
                let _ = write!(log, " cut#{i}@{cut}");
            }
            _ => {
                let i = rng.below(n);
                let at = rng.range(0..n + 1);
                let junk_len = rng.range(1..24);
                let junk = if rng.chance(50) { eos().to_vec() } else { rng.bytes(junk_len) };
                parts.insert(at, junk);
                let _ = write!(log, " junk#{i}@{at}");
            }
        }
    }
    parts.concat()
}

/// One generated case: (input bytes, index of the sample whose StreamSchema to split with).
pub(crate) fn generate(rng: &mut Rng, samples: &[Sample], log: &mut String) -> (Vec<u8>, usize) {
    let si = rng.below(samples.len());
    let s = &samples[si];
    let other = &samples[rng.below(samples.len())];
    let mut plain_sample = false;
    let mut buf = match rng.below(21) {
        0 => {
            let _ = write!(log, "empty");
            Vec::new()
        }
        1 => {
            let n = rng.range(0..512);
            let _ = write!(log, "garbage[{n}]");
            rng.bytes(n)
        }
        2 => {
            // forged length prefix, with or without the continuation marker
            let v = rand_i32(rng);
            let legacy = rng.chance(40);
            let _ = write!(log, "prefix{}={v}", if legacy { "(legacy)" } else { "" });
            let mut b = if legacy { Vec::new() } else { vec![0xFF; 4] };
            b.extend_from_slice(&v.to_le_bytes());
            let tail_len = rng.range(0..64);
            let tail = if rng.chance(50) { s.bytes[rng.below(s.bytes.len())..].to_vec() } else { rng.bytes(tail_len) };
            b.extend(tail);
            b
        }
        3 | 4 => {
            let _ = write!(log, "concat {}+{}", s.name, other.name);
            let mut b = s.bytes.clone();
            if rng.chance(50) {
                // without the first stream's end-of-stream marker
                b.truncate(b.len() - if b.ends_with(&eos()) { 8 } else { 4 });
            }
            b.extend_from_slice(&other.bytes);
            b
        }
        5..=7 => {
            let _ = write!(log, "messages {}:", s.name);
            mutate_messages(rng, s, other, log)
        }
        8..=10 => {
            // a random schema, then random data messages
            let legacy = rng.chance(20);
            let header = random_schema_message(rng);
            let ids = declared_dict_ids(&header);
            let _ = write!(log, "random-schema ids={ids:?} legacy={legacy}");
            let mut b = Vec::new();
            frame(&mut b, &header, &[], legacy);
            for _ in 0..rng.range(0..6) {
                random_data_message(rng, &mut b, &ids, legacy);
            }
            if rng.chance(50) {
                b.extend_from_slice(&eos());
            }
            b
        }
        20 => {
            // inputs that expand: a union of ~128 children, one name string shared by many
            // fields, many dictionaries times many batches
            let mut b = Vec::new();
            match rng.below(3) {
                0 => {
                    let n = rng.range(120..140);
                    let _ = write!(log, "union of {n}");
                    frame(&mut b, &union_schema_message(n), &[], false);
                    frame(&mut b, &empty_batch_message(None), &[], false);
                }
                1 => {
                    let (n, len) = (rng.range(1..3000), rng.range(1..(32 << 10)));
                    let _ = write!(log, "shared name: {n} fields x {len} bytes");
                    frame(&mut b, &wide_schema_message(n, len, rng.chance(50), true), &[], false);
                    frame(&mut b, &empty_batch_message(None), &[], false);
                }
                _ => {
                    let (d, m) = (rng.range(1..300), rng.range(1..2000));
                    let _ = write!(log, "{d} dictionaries x {m} batches");
                    b = dictionary_heavy_stream(d, m);
                }
            }
            b
        }
        11..=13 => {
            // a valid schema message, then random data messages
            let sp = spans(&s.bytes);
            let legacy = s.bytes[..4] != [0xFF; 4];
            let mut b = s.bytes[sp[0].clone()].to_vec();
            let hdr_start = if legacy { 4 } else { 8 };
            let ids = declared_dict_ids(&s.bytes[hdr_start..sp[0].end]);
            let _ = write!(log, "{} schema + random messages ids={ids:?}", s.name);
            for _ in 0..rng.range(1..8) {
                if rng.chance(30) {
                    // a real message of the sample in between
                    b.extend_from_slice(&s.bytes[sp[rng.below(sp.len())].clone()]);
                } else {
                    random_data_message(rng, &mut b, &ids, legacy);
                }
            }
            b
        }
        _ => {
            let _ = write!(log, "{}:", s.name);
            plain_sample = true;
            s.bytes.clone()
        }
    };
    let rounds = if plain_sample {
        rng.range(1..4)
    } else if rng.chance(30) {
        rng.range(1..3)
    } else {
        0
    };
    for _ in 0..rounds {
        mutate_bytes(rng, &mut buf, log, &other.bytes);
    }
    (buf, si)
}
