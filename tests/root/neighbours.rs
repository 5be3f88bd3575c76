//! What one customer can learn of another through the tree: a member of a customer's group
//! (www-data, a colleague added to share web files) reads nothing of that customer's cgroup.

use std::os::unix::fs::MetadataExt;

use pam_cgroup_tests::support::users::add_to_group;
use pam_cgroup_tests::support::{require_root, run_session, SessionOptions, TestSetup, TestUser};

use crate::cgroupctl::ctl;

#[test]
fn a_member_of_the_customers_group_reads_nothing_of_its_user_cgroup_and_doctor_names_it() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pgm");
    let bob = TestUser::new("pgm");
    let alice_dir = setup.tree.user(&alice.name);
    let login = || {
        let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
        assert_eq!(r.open_rc, 0, "{r:?}");
    };
    login();
    let meta = std::fs::metadata(&alice_dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, alice.gid, 0o750),
        "a private group: alice reads her own cgroup"
    );
    let bob_lists = || {
        bob.command("ls")
            .arg(&alice_dir)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!bob_lists(), "bob is no member yet");

    // Bob joins alice's group (to share her web files): from alice's next login on, her
    // cgroup is root's alone.
    add_to_group(&bob.name, &alice.name);
    login();
    let meta = std::fs::metadata(&alice_dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o711),
        "a group with another member does not qualify as alice's own"
    );
    assert!(!bob_lists(), "bob lists alice's sessions through her group");
    let memory = bob
        .command("cat")
        .arg(alice_dir.join("cgroup.procs"))
        .output()
        .unwrap();
    assert!(!memory.status.success(), "bob reads alice's PIDs");

    let doctor = ctl(&setup, &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.lines().any(|l| l.contains("shared-groups")
            && l.contains(&alice.name)
            && l.contains(&format!("also lists {}", bob.name))),
        "doctor names the user and the other member: {text}"
    );
}
