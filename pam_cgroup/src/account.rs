//! The account hook's body: the user, a call into cgroup-core, a message and a PAM code.

use pam::constants::PamResultCode;
use pam::module::PamHandle;

use cgroup_core::account::{account_check, AccountRequest, AccountVerdict};
use cgroup_core::notice::Level;

use crate::args::ModuleArgs;
use crate::items::{service_name, tell};
use crate::log::Logger;

pub(crate) fn check(pamh: &mut PamHandle, args: &ModuleArgs, log: &mut Logger) -> PamResultCode {
    let user = match pamh.get_user(None) {
        Ok(u) => u,
        Err(code) => {
            log.error(&format!(
                "cannot get the user name: PAM error {}",
                code as i32
            ));
            return PamResultCode::PAM_IGNORE;
        }
    };
    let service = service_name(pamh);
    let report = account_check(&AccountRequest {
        config_path: &args.config,
        user: &user,
        service: &service,
    });
    for notice in &report.notices {
        log.log(notice.level, &format!("user {user}: {}", notice.text));
    }
    match report.verdict {
        AccountVerdict::Allow => PamResultCode::PAM_SUCCESS,
        AccountVerdict::NotJudged(why) => {
            log.debug(&format!("user {user}: not judged: {why}"));
            PamResultCode::PAM_IGNORE
        }
        AccountVerdict::Refuse(e) => {
            log.log(Level::Notice, &format!("user {user}: login refused: {e}"));
            tell(pamh, &e.to_string(), log);
            PamResultCode::PAM_PERM_DENIED
        }
    }
}
