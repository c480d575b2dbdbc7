//! Tables of figures for people: numbers right-aligned with digit grouping, money aligned on
//! the decimal point without rounding (shorter fractions are padded with zeros, which changes
//! nothing about the value).

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Columns separated by two spaces, no trailing whitespace. Control characters in cells are
/// replaced, since server data must not move the cursor or recolour the terminal.
pub fn table(headers: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let mut all: Vec<Vec<String>> = Vec::new();
    if !headers.is_empty() {
        all.push(headers.iter().map(|h| clean(h)).collect());
    }
    all.extend(rows.iter().map(|r| r.iter().map(|c| clean(c)).collect()));
    let columns = all.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in &all {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        out.push_str(&line(row, &widths, align));
        out.push('\n');
    }
    out
}

/// One row padded to `widths` (cells longer than their width just push the rest right).
pub fn line(row: &[String], widths: &[usize], align: &[Align]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let pad = widths
            .get(i)
            .copied()
            .unwrap_or(0)
            .saturating_sub(cell.chars().count());
        match align.get(i).copied().unwrap_or(Align::Left) {
            Align::Left => {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            Align::Right => {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
    }
    line.trim_end().to_owned()
}

/// `1234567` → `1,234,567`; anything that is not a plain integer is returned unchanged.
pub fn group_digits(n: &str) -> String {
    let (sign, digits) = match n.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", n),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return n.to_owned();
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Pads decimal strings with trailing zeros to the longest fraction among them, so that a
/// right-aligned column lines up on the decimal point. Values are exact; nothing is rounded.
pub fn align_decimals(values: &mut [String]) {
    let places = |v: &str| v.split_once('.').map_or(0, |(_, f)| f.len());
    let max = values.iter().map(|v| places(v)).max().unwrap_or(0);
    if max == 0 {
        return;
    }
    for v in values.iter_mut() {
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            continue;
        }
        let have = places(v);
        if have == 0 {
            v.push('.');
        }
        v.extend(std::iter::repeat_n('0', max - have));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits("0"), "0");
        assert_eq!(group_digits("999"), "999");
        assert_eq!(group_digits("1000"), "1,000");
        assert_eq!(group_digits("1234567"), "1,234,567");
        assert_eq!(group_digits("-1234"), "-1,234");
        assert_eq!(group_digits("1.5"), "1.5");
    }

    #[test]
    fn decimals_line_up_without_rounding() {
        let mut v = vec![
            "12.5".to_string(),
            "0.000000675".to_string(),
            "3".to_string(),
        ];
        align_decimals(&mut v);
        assert_eq!(v, ["12.500000000", "0.000000675", "3.000000000"]);
    }

    #[test]
    fn tables_align_left_and_right() {
        let t = table(
            &["NAME", "COST"],
            &[Align::Left, Align::Right],
            &[
                vec!["a".into(), "1.50".into()],
                vec!["long\u{1b}".into(), "10.25".into()],
            ],
        );
        assert_eq!(t, "NAME    COST\na       1.50\nlong   10.25\n");
    }
}
