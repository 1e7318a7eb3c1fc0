"""Messages of the people pages (users, roles, invitations) and the tokens page:
key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.tokens": ("Tokens", "토큰"),
    "nav.people": ("People", "사용자"),
    # roles
    "people.role": ("Role", "역할"),
    "people.role.admin": ("Admin", "관리자"),
    "people.role.auditor": ("Auditor", "감사자"),
    "people.role.program_manager": ("Program manager", "프로그램 관리자"),
    "people.role.pi": ("PI", "책임자(PI)"),
    "people.role.researcher": ("Researcher", "연구원"),
    # the people page
    "people.title": ("People and roles", "사용자와 역할"),
    "people.users": ("Users", "사용자"),
    "people.user": ("User", "사용자"),
    "people.pool_roles": ("Pool roles", "풀 전체 역할"),
    "people.projects": ("Projects", "프로젝트"),
    "people.programs": ("Programs managed", "관리하는 프로그램"),
    "people.member_as": ("{project}: {role}", "{project}: {role}"),
    "people.no_users": ("No users yet.", "아직 사용자가 없습니다."),
    "people.read_only": (
        "You can read who holds which role. Only admins invite people and change roles.",
        "누가 어떤 역할을 맡고 있는지 볼 수 있습니다. 사용자 초대와 역할 변경은 관리자만 할 수 "
        "있습니다.",
    ),
    "people.refused": ("Not done", "처리되지 않았습니다"),
    "people.revoke": ("Revoke", "회수"),
    "people.remove": ("Remove", "해제"),
    "people.revoke_role_of": ("Revoke {role} from {user}", "{user} 님의 {role} 역할 회수"),
    "people.remove_member_of": (
        "Remove {user} from {project}",
        "{project}에서 {user} 님 해제",
    ),
    "people.remove_manager_of": (
        "Remove {user} as a manager of {program}",
        "{program} 관리자에서 {user} 님 해제",
    ),
    "people.revoke_invitation_of": (
        "Revoke the invitation of {user}",
        "{user} 님의 초대 회수",
    ),
    # inviting
    "people.invite": ("Invite a person", "사용자 초대"),
    "people.invite_hint": (
        "Invitations make a one-time sign-in link for a named person. New names are added as "
        "users. The link is shown once.",
        "지정한 사용자를 위한 일회용 로그인 링크를 만듭니다. 새 이름이면 사용자로 추가됩니다. "
        "링크는 한 번만 표시됩니다.",
    ),
    "people.user_name": ("User name", "사용자 이름"),
    "people.user_name_hint": (
        "Lower-case letters, digits and . _ @ -, for example mina.seo",
        "영문 소문자, 숫자와 . _ @ - (예: mina.seo)",
    ),
    "people.display_name": ("Display name (optional)", "표시 이름 (선택)"),
    "people.email": ("Email (optional)", "이메일 (선택)"),
    "people.expires_in_days": ("Link expires after (days)", "링크 유효 기간 (일)"),
    "people.into_project": ("Into project (optional)", "소속 프로젝트 (선택)"),
    "people.no_project": ("No project", "프로젝트 없음"),
    "people.project_role": ("Role in the project", "프로젝트 내 역할"),
    "people.invite_send": ("Invite", "초대"),
    "people.issued_title": ("Sign-in link for {user}", "{user} 님의 로그인 링크"),
    "people.issued_once": (
        "Send this link to this person and no one else. It signs in once and expires at {when}. "
        "It will not be shown again.",
        "이 링크는 당사자에게만 보내 주세요. 한 번만 로그인할 수 있으며 {when}에 만료됩니다. "
        "다시 표시되지 않습니다.",
    ),
    "people.signin_link": ("Sign-in link", "로그인 링크"),
    "people.copy_hint": (
        "Select the link and copy it now.",
        "지금 링크를 선택해 복사해 두세요.",
    ),
    "people.issued_created": (
        "{user} was added as a new user.",
        "{user} 님이 새 사용자로 추가되었습니다.",
    ),
    "people.issued_project": (
        "{user} is a {role} of {project}.",
        "{user} 님은 {project}의 {role}입니다.",
    ),
    # pending invitations
    "people.pending": ("Pending invitations", "대기 중인 초대"),
    "people.no_pending": ("No invitation is waiting to be used.", "대기 중인 초대가 없습니다."),
    "people.invited_by": ("Invited by", "초대한 사람"),
    "people.issued_at": ("Issued", "발급"),
    "people.expires": ("Expires", "만료"),
    # granting
    "people.grant": ("Grant a role", "역할 부여"),
    "people.grant_pool": ("Auditor or admin, pool-wide", "풀 전체 감사자 또는 관리자"),
    "people.grant_send": ("Grant", "부여"),
    "people.grant_manager": ("Program manager", "프로그램 관리자"),
    "people.appoint_send": ("Appoint", "임명"),
    "people.grant_member": ("Researcher or PI of a project", "프로젝트 연구원 또는 책임자(PI)"),
    "people.member_send": ("Save", "저장"),
    # what a form did
    "people.done.invitation_revoked": ("The invitation was revoked.", "초대를 회수했습니다."),
    "people.done.role_granted": ("The role was granted.", "역할을 부여했습니다."),
    "people.done.role_revoked": ("The role was revoked.", "역할을 회수했습니다."),
    "people.done.manager_added": (
        "The program manager was appointed.",
        "프로그램 관리자를 임명했습니다.",
    ),
    "people.done.manager_removed": (
        "The program manager was removed.",
        "프로그램 관리자를 해제했습니다.",
    ),
    "people.done.member_set": ("The project role was saved.", "프로젝트 역할을 저장했습니다."),
    "people.done.member_removed": (
        "The member was removed from the project.",
        "프로젝트에서 구성원을 해제했습니다.",
    ),
    "people.done.token_revoked": (
        "The token was revoked. Anything using it is refused from now on.",
        "토큰을 폐기했습니다. 이제 이 토큰을 쓰는 요청은 거부됩니다.",
    ),
    # tokens
    "tokens.title": ("Your access tokens", "내 액세스 토큰"),
    "tokens.intro": (
        "Personal access tokens let the gpupool CLI and scripts act as you through the API. "
        "gpupool keeps only a hash of each: a token's secret is shown once, when it is made.",
        "개인 액세스 토큰으로 gpupool CLI와 스크립트가 API를 통해 본인으로 작업합니다. gpupool은 "
        "토큰의 해시만 보관하므로 비밀 값은 만들 때 한 번만 표시됩니다.",
    ),
    "tokens.yours": ("Your tokens", "내 토큰"),
    "tokens.none": ("You have no tokens.", "토큰이 없습니다."),
    "tokens.scopes": ("Scopes", "권한 범위"),
    "tokens.created": ("Created", "생성"),
    "tokens.expires": ("Expires", "만료"),
    "tokens.last_used": ("Last used", "마지막 사용"),
    "tokens.never": ("Never expires", "만료 없음"),
    "tokens.never_used": ("Never", "사용 안 함"),
    "tokens.this_signin": ("This browser's sign-in", "이 브라우저의 로그인"),
    "tokens.this_signin_hint": (
        "Revoking this browser's sign-in token signs this browser out.",
        "이 브라우저의 로그인 토큰을 폐기하면 이 브라우저에서 로그아웃됩니다.",
    ),
    "tokens.revoke": ("Revoke", "폐기"),
    "tokens.revoke_named": ("Revoke the token {name}", "토큰 {name} 폐기"),
    "tokens.new": ("Make a token", "토큰 만들기"),
    "tokens.name_hint": (
        "What it is for, such as the laptop or the script that uses it.",
        "용도를 적어 주세요 (예: 사용하는 노트북이나 스크립트).",
    ),
    "tokens.scope.read": ("see the books, reports and job states", "원장, 보고서, 작업 상태 보기"),
    "tokens.scope.jobs": (
        "submit, follow and cancel jobs",
        "작업 제출, 확인, 취소",
    ),
    "tokens.scope.manage": (
        "change the books, members, roles and tokens",
        "원장, 구성원, 역할, 토큰 변경",
    ),
    "tokens.lifetime": ("Expires", "만료"),
    "tokens.with_signin": (
        "With this sign-in ({when})",
        "이 로그인과 함께 ({when})",
    ),
    "tokens.days": ("After {days} days", "{days}일 후"),
    "tokens.make": ("Make the token", "토큰 만들기"),
    "tokens.refused": ("Not made", "만들지 못했습니다"),
    "tokens.name_needed": ("Give the token a name.", "토큰 이름을 입력해 주세요."),
    "tokens.scope_needed": ("Tick at least one scope.", "권한 범위를 하나 이상 선택해 주세요."),
    "tokens.lifetime_unknown": (
        "Choose one of the lifetimes offered.",
        "제시된 만료 기간 중 하나를 선택해 주세요.",
    ),
    "tokens.made_title": ("Your new token {name}", "새 토큰 {name}"),
    "tokens.copy_now": (
        "Copy this token now. It will not be shown again, and gpupool cannot recover it.",
        "지금 이 토큰을 복사해 두세요. 다시 표시되지 않으며 gpupool에서도 되찾을 수 없습니다.",
    ),
    "tokens.secret": ("Token", "토큰"),
    "tokens.made_scopes": ("Scopes: {scopes}", "권한 범위: {scopes}"),
}
