//! Staff at the screens: PIN login and the requests self-serve screens make of staff.
//!
//! - Staff members are declared in the config (`[staff.ID]` with `name`, `role` and
//!   `pin_sha256` = hex SHA-256 of `ID:PIN`, printed by `edged hash-pin ID`). A PIN is never
//!   stored or logged in clear. `POST /v1/login` answers with the member's name, role and
//!   the role's token; the screens never hold a token they did not get this way (staff)
//!   or from the kiosk's own file (self-serve).
//! - Wrong PINs are counted: after [`MAX_FAILURES`] within [`FAILURE_WINDOW`] every login
//!   is refused for [`LOCKOUT`] (a 4-digit PIN must not be guessable by trying).
//! - A PIN shared by two members is refused at login (the hashes are salted by the id, so
//!   `check-config` cannot see it): the record would not say who acted.
//! - Approvals: a self-serve screen asks staff for an age check or for help
//!   (`POST /v1/approvals`); staff screens hear `approval.requested`, a cashier or manager
//!   answers with their PIN, every screen hears `approval.decided`. Requests live in memory
//!   (a daemon restart drops them; the kiosk asks again) and expire after [`APPROVAL_TTL`].

use crate::tokens::Role;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Wrong PINs allowed within [`FAILURE_WINDOW`] before logins are locked.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// A request for staff nobody answered expires after this.
pub const APPROVAL_TTL: Duration = Duration::from_secs(600);
/// Requests kept (answered ones are dropped oldest first beyond this).
const MAX_APPROVALS: usize = 200;

/// One member of staff, from the config.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub pin_sha256: [u8; 32],
}

impl std::fmt::Debug for StaffMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffMember").field("id", &self.id).field("role", &self.role).finish_non_exhaustive()
    }
}

/// The hash a config keeps for a member's PIN: SHA-256 of `ID:PIN`.
pub fn pin_hash(id: &str, pin: &str) -> [u8; 32] {
    Sha256::digest(format!("{id}:{pin}").as_bytes()).into()
}

/// [`pin_hash`] as the config writes it (lowercase hex).
pub fn pin_hash_hex(id: &str, pin: &str) -> String {
    pin_hash(id, pin).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A PIN is 4 to 8 digits.
pub fn pin_well_formed(pin: &str) -> bool {
    (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Why a PIN was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("a PIN is 4 to 8 digits")]
    Malformed,
    #[error("wrong PIN")]
    Wrong,
    #[error("too many wrong PINs; try again in {0} s")]
    Locked(u64),
    #[error("this PIN belongs to more than one member of staff; give each their own")]
    Shared,
}

/// The staff list and the wrong-PIN counter.
#[derive(Debug, Default)]
pub struct Staff {
    members: Vec<StaffMember>,
    failures: Mutex<(VecDeque<Instant>, Option<Instant>)>,
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Staff {
    pub fn new(members: Vec<StaffMember>) -> Staff {
        Staff { members, failures: Mutex::new((VecDeque::new(), None)) }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member whose PIN this is (counting wrong PINs toward the lockout).
    pub fn verify(&self, pin: &str) -> Result<StaffMember, PinError> {
        self.verify_at(pin, Instant::now())
    }

    fn verify_at(&self, pin: &str, now: Instant) -> Result<StaffMember, PinError> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = f.1 {
            if now < until {
                return Err(PinError::Locked((until - now).as_secs().max(1)));
            }
            f.1 = None;
            f.0.clear();
        }
        if !pin_well_formed(pin) {
            return Err(PinError::Malformed);
        }
        // Every member is checked, in constant time each, whether or not one matched.
        let matches: Vec<&StaffMember> =
            self.members.iter().filter(|m| ct_eq(&pin_hash(&m.id, pin), &m.pin_sha256)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                while f.0.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
                    f.0.pop_front();
                }
                f.0.push_back(now);
                if f.0.len() >= MAX_FAILURES {
                    f.1 = Some(now + LOCKOUT);
                    tracing::warn!(failures = f.0.len(), lockout_s = LOCKOUT.as_secs(), "PIN logins locked");
                }
                Err(PinError::Wrong)
            }
            _ => Err(PinError::Shared),
        }
    }
}

/// What a self-serve screen asks staff for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalKind {
    /// An age check for an age-restricted item.
    Age,
    /// A customer asks for help.
    Help,
}

impl ApprovalKind {
    pub fn parse(s: &str) -> Option<ApprovalKind> {
        match s {
            "age" => Some(ApprovalKind::Age),
            "help" => Some(ApprovalKind::Help),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Age => "age",
            ApprovalKind::Help => "help",
        }
    }

    /// The state a staff decision (`approve`, `refuse`, `done`) leads to for this kind, or
    /// `None` when the decision does not answer it.
    pub fn decided(self, decision: &str) -> Option<ApprovalState> {
        match (self, decision) {
            (ApprovalKind::Age, "approve") => Some(ApprovalState::Approved),
            (ApprovalKind::Age, "refuse") => Some(ApprovalState::Refused),
            (ApprovalKind::Help, "done") => Some(ApprovalState::Done),
            _ => None,
        }
    }
}

/// Where a request for staff stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Refused,
    Done,
    /// Not answered within [`APPROVAL_TTL`].
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Refused => "refused",
            ApprovalState::Done => "done",
            ApprovalState::Expired => "expired",
        }
    }
}

/// A self-serve screen's request for staff.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: Uuid,
    pub kind: ApprovalKind,
    /// The screen that asked (`kiosk-1`).
    pub screen: String,
    pub sku: Option<String>,
    pub item_name: Option<String>,
    pub state: ApprovalState,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<String>,
}

/// Requests of self-serve screens for staff.
#[derive(Debug, Default)]
pub struct Approvals {
    map: Mutex<BTreeMap<Uuid, (Instant, Approval)>>,
}

impl Approvals {
    /// Files a new request.
    pub fn open(&self, kind: ApprovalKind, screen: &str, sku: Option<String>, item_name: Option<String>) -> Approval {
        let a = Approval {
            id: edge_sync::domain::new_id(),
            kind,
            screen: screen.to_string(),
            sku,
            item_name,
            state: ApprovalState::Pending,
            created_at: Timestamp::now(),
            decided_at: None,
            decided_by: None,
        };
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut m);
        while m.len() >= MAX_APPROVALS {
            // Oldest answered first; ids are time-ordered (UUID v7).
            let victim = m.iter().find(|(_, (_, a))| a.state != ApprovalState::Pending).map(|(k, _)| *k);
            match victim.or_else(|| m.keys().next().copied()) {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(a.id, (Instant::now(), a.clone()));
        a
    }

    pub fn get(&self, id: &Uuid) -> Option<Approval> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut m);
        m.get(id).map(|(_, a)| a.clone())
    }

    /// Pending requests, oldest first.
    pub fn pending(&self) -> Vec<Approval> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut m);
        m.values().filter(|(_, a)| a.state == ApprovalState::Pending).map(|(_, a)| a.clone()).collect()
    }

    /// Answers a pending request. Err names why not (unknown, already answered).
    pub fn decide(&self, id: &Uuid, state: ApprovalState, by: &str) -> Result<Approval, String> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut m);
        let Some((_, a)) = m.get_mut(id) else { return Err(format!("no request {id}")) };
        if a.state != ApprovalState::Pending {
            return Err(format!("request {id} is {} already", a.state.as_str()));
        }
        a.state = state;
        a.decided_at = Some(Timestamp::now());
        a.decided_by = Some(by.to_string());
        Ok(a.clone())
    }
}

fn expire(m: &mut BTreeMap<Uuid, (Instant, Approval)>) {
    for (at, a) in m.values_mut() {
        if a.state == ApprovalState::Pending && at.elapsed() > APPROVAL_TTL {
            a.state = ApprovalState::Expired;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> Staff {
        Staff::new(vec![
            StaffMember {
                id: "anna".into(),
                name: "Anna".into(),
                role: Role::Cashier,
                pin_sha256: pin_hash("anna", "1111"),
            },
            StaffMember {
                id: "max".into(),
                name: "Max".into(),
                role: Role::Manager,
                pin_sha256: pin_hash("max", "9999"),
            },
            StaffMember {
                id: "eve".into(),
                name: "Eve".into(),
                role: Role::Cashier,
                pin_sha256: pin_hash("eve", "9999"),
            },
        ])
    }

    #[test]
    fn a_pin_names_its_member_and_wrong_pins_lock_logins() {
        let s = staff();
        let t0 = Instant::now();
        assert_eq!(s.verify_at("1111", t0).map(|m| m.name), Ok("Anna".into()));
        assert_eq!(s.verify_at("12ab", t0), Err(PinError::Malformed));
        assert_eq!(s.verify_at("9999", t0), Err(PinError::Shared));
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(s.verify_at("0000", t0), Err(PinError::Wrong));
        }
        assert_eq!(s.verify_at("1111", t0).map(|m| m.id), Ok("anna".into()));
        assert_eq!(s.verify_at("0000", t0), Err(PinError::Wrong));
        // Locked: even the right PIN is refused until the lockout ends.
        assert!(matches!(s.verify_at("1111", t0 + Duration::from_secs(1)), Err(PinError::Locked(_))));
        assert_eq!(s.verify_at("1111", t0 + LOCKOUT + Duration::from_secs(1)).map(|m| m.id), Ok("anna".into()));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = pin_hash_hex("anna", "1111");
        assert_eq!(parse_hash(&h), Some(pin_hash("anna", "1111")));
        assert_eq!(parse_hash("zz"), None);
        assert!(!pin_well_formed("123") && !pin_well_formed("123456789") && pin_well_formed("123456"));
    }

    #[test]
    fn approvals_are_answered_once() {
        let a = Approvals::default();
        let r = a.open(ApprovalKind::Age, "kiosk-1", Some("SKU-1".into()), Some("Wine".into()));
        assert_eq!(a.pending().len(), 1);
        let d = a.decide(&r.id, ApprovalState::Approved, "Anna").expect("decide");
        assert_eq!((d.state, d.decided_by.as_deref()), (ApprovalState::Approved, Some("Anna")));
        assert!(a.decide(&r.id, ApprovalState::Refused, "Max").is_err());
        assert!(a.pending().is_empty());
        assert_eq!(a.get(&r.id).map(|x| x.state), Some(ApprovalState::Approved));
        // Each kind is answered only by its own decisions.
        assert_eq!(ApprovalKind::Age.decided("done"), None);
        assert_eq!(ApprovalKind::Help.decided("approve"), None);
        assert_eq!(ApprovalKind::Help.decided("done"), Some(ApprovalState::Done));
    }
}
