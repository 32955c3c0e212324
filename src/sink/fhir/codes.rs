//! Syntax checks of the codes a FHIR mapping declares, made at startup.
//!
//! No terminology server is at hand, so a code cannot be looked up; what
//! can be checked without one is checked here: LOINC codes carry a mod-10
//! check digit, SNOMED CT concept ids a Verhoeff check digit, ICD-10(-CM)
//! codes have a fixed shape, UCUM codes are printable ASCII without spaces.
//! A typo in a topology fails `check` instead of reaching consumers.

/// Code system URIs the mapping knows by name.
pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// Why `code` is not a well-formed LOINC code (`NNNNN-C`, C the mod-10
/// check digit of the digits before the dash), or None.
///
/// ```
/// # use resynth::sink::fhir::codes::loinc_problem;
/// assert_eq!(loinc_problem("4548-4"), None);
/// assert!(loinc_problem("4548-5").is_some());
/// ```
pub fn loinc_problem(code: &str) -> Option<String> {
    let Some((body, check)) = code.split_once('-') else {
        return Some(format!(
            "{code:?} is not a LOINC code (digits, '-', check digit)"
        ));
    };
    if body.is_empty()
        || body.len() > 7
        || !body.bytes().all(|b| b.is_ascii_digit())
        || check.len() != 1
        || !check.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(format!(
            "{code:?} is not a LOINC code (digits, '-', check digit)"
        ));
    }
    let want = luhn_check_digit(body);
    (check.as_bytes()[0] - b'0' != want)
        .then(|| format!("{code:?}: the LOINC check digit of {body} is {want}"))
}

/// The mod-10 (Luhn) check digit LOINC uses: from the right, every other
/// digit (the rightmost first) doubled, digits of the products summed with
/// the others, the amount to the next multiple of ten.
fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = 2 * d;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Why `code` is not a well-formed SNOMED CT concept id (6–18 digits, no
/// leading zero, partition 00 or 10, Verhoeff check digit last), or None.
pub fn snomed_problem(code: &str) -> Option<String> {
    if !(6..=18).contains(&code.len())
        || !code.bytes().all(|b| b.is_ascii_digit())
        || code.starts_with('0')
    {
        return Some(format!(
            "{code:?} is not a SNOMED CT concept id (6-18 digits, no leading zero)"
        ));
    }
    let partition = &code[code.len() - 3..code.len() - 1];
    if partition != "00" && partition != "10" {
        return Some(format!(
            "{code:?}: partition {partition} is not a concept's (00 or 10)"
        ));
    }
    (!verhoeff_valid(code)).then(|| format!("{code:?}: the Verhoeff check digit does not match"))
}

/// Verhoeff's dihedral-group check (the last digit is the check digit).
fn verhoeff_valid(digits: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, b) in digits.bytes().rev().enumerate() {
        c = D[c as usize][P[i % 8][(b - b'0') as usize] as usize];
    }
    c == 0
}

/// Why `code` is not shaped like an ICD-10 / ICD-10-CM code (`E11.9`,
/// `I10`, `Z00.00`), or None.
pub fn icd10_problem(code: &str) -> Option<String> {
    let b = code.as_bytes();
    let head = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase());
    let tail = match &code.get(3..) {
        Some("") => true,
        Some(rest) => {
            rest.len() >= 2
                && rest.len() <= 5
                && rest.starts_with('.')
                && rest[1..]
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        }
        None => false,
    };
    (!(head && tail))
        .then(|| format!("{code:?} is not shaped like an ICD-10 code (A00 or A00.0000)"))
}

/// The problem with `code` in `system`, where the system is one whose
/// codes can be checked offline; None otherwise.
pub fn code_problem(system: &str, code: &str) -> Option<String> {
    match system {
        LOINC => loinc_problem(code),
        SNOMED => snomed_problem(code),
        ICD10 | ICD10CM => icd10_problem(code),
        _ if code.trim().is_empty() || code.trim() != code => Some(format!(
            "{code:?}: a code must be non-empty with no surrounding spaces"
        )),
        _ => None,
    }
}

/// Why `unit` cannot be a UCUM code (the check is only syntactic: UCUM
/// codes are printable ASCII without spaces), or None.
pub fn ucum_problem(unit: &str) -> Option<String> {
    (unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_graphic())).then(|| {
        format!("{unit:?} is not a UCUM code (printable ASCII, no spaces; e.g. \"mg/dL\", \"%\", \"kg/m2\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loinc_check_digits_of_published_codes() {
        // Codes and check digits as LOINC publishes them (loinc.org).
        for ok in [
            "4548-4", "1558-6", "13457-7", "2160-0", "39156-5", "8480-6", "2339-0",
        ] {
            assert_eq!(loinc_problem(ok), None, "{ok}");
        }
        for bad in ["4548-3", "4548", "45a8-4", "-4", "4548-44", "12345678-9"] {
            assert!(loinc_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn snomed_verhoeff_of_published_concepts() {
        // Diabetes mellitus type 2, essential hypertension, hyperlipidemia,
        // asthma (SNOMED CT International).
        for ok in ["44054006", "59621000", "55822004", "195967001"] {
            assert_eq!(snomed_problem(ok), None, "{ok}");
        }
        for bad in ["44054007", "04405400", "12345", "4405400x", "44054016"] {
            assert!(snomed_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn icd10_shapes() {
        for ok in ["E11.9", "I10", "Z00.00", "E78.5", "S72.001A"] {
            assert_eq!(icd10_problem(ok), None, "{ok}");
        }
        for bad in ["e11.9", "E1", "E11.", "E11-9", "11.9", "E11.123456"] {
            assert!(icd10_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn ucum_syntax() {
        assert_eq!(ucum_problem("mg/dL"), None);
        assert_eq!(ucum_problem("%"), None);
        assert!(ucum_problem("mg / dL").is_some());
        assert!(ucum_problem("").is_some());
    }
}
