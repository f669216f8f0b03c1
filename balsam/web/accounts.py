"""Logins to a DB's web pages: ``balsam web adduser`` / ``passwd``, and the
login backend.

Accounts are Django's own users (``django.contrib.auth``), one set per DB,
every one a superuser: the pages show and change that DB only. Their rows are
not Balsam's tables, and the dbserver does not load the auth app, so they are
written here, by the command, under ``core.sql.write_transaction()`` (SQLite's
write lock from the start: it waits its turn behind a dbserver or launchers
like any direct writer). The web server itself never writes them: logins do
not stamp ``last_login`` (see ``apps.py``) nor rehash passwords (below).
Import this module only after ``activate(admin=True)``.
"""

from pathlib import Path

from django.contrib.auth.backends import ModelBackend

from balsam.exceptions import NotFound, ValidationError

MAX_PASSWORD_FILE_BYTES = 4096


def _user_model():
    from django.contrib.auth import get_user_model

    return get_user_model()


def _check_name(name):
    from django.contrib.auth.validators import UnicodeUsernameValidator
    from django.core.exceptions import ValidationError as DjangoValidationError

    name = str(name)
    if not name.strip():
        raise ValidationError("the login name must not be empty")
    if len(name) > 150:
        raise ValidationError(f"the login name must be at most 150 characters, not {len(name)}")
    try:
        UnicodeUsernameValidator()(name)
    except DjangoValidationError:
        raise ValidationError(f"login name {name!r} may contain only letters, digits and @ . + - _") from None
    return name


def _check_password(password, user):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError("password refused: " + " ".join(exc.messages)) from None


def read_password_file(path):
    """The first line of ``path`` (without its line end): one clear error for
    a missing, unreadable, binary or empty file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PASSWORD_FILE_BYTES)
    except IsADirectoryError:
        raise ValidationError(f"password file {path} is a directory") from None
    except OSError as exc:
        raise ValidationError(f"cannot read password file {path}: {exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValidationError(f"password file {path} is not text (UTF-8)") from None
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if not first:
        raise ValidationError(f"password file {path} is empty: its first line is the password")
    return first


def user_names():
    return sorted(_user_model().objects.values_list("username", flat=True))


def check_new_user(name):
    """``name`` if it is a valid login name nobody has yet."""
    name = _check_name(name)
    if _user_model().objects.filter(username=name).exists():
        raise ValidationError(f"login {name!r} exists; change its password with: balsam web passwd {name}")
    return name


def require_user(name):
    """The user named ``name``, or one line naming the logins there are."""
    user = _user_model().objects.filter(username=str(name)).first()
    if user is None:
        known = ", ".join(user_names()[:10]) or "none yet"
        raise NotFound(f"no login {name!r} (logins: {known}); add one with: balsam web adduser NAME")
    return user


def add_user(name, password):
    """A new login (a superuser) for this DB."""
    from balsam.core.sql import write_transaction

    User = _user_model()
    name = check_new_user(name)
    _check_password(password, User(username=name))
    with write_transaction():
        User.objects.create_superuser(name, email="", password=password)
    return name


def set_password(name, password):
    """A new password for an existing login (also re-enables it)."""
    from balsam.core.sql import write_transaction

    user = require_user(name)
    _check_password(password, user)
    user.set_password(password)
    user.is_active = True
    with write_transaction():
        user.save(update_fields=["password", "is_active"])
    return user.username


class ReadOnlyModelBackend(ModelBackend):
    """Django's username/password check without its side write: Django
    rewrites a password's hash on login when its hasher settings changed
    since (a Django upgrade). Here the hash stays as ``passwd`` wrote it."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        from django.contrib.auth.hashers import check_password

        User = _user_model()
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        user = User._default_manager.filter(username=username).first()
        if user is None:
            User().set_password(password)  # the same work as for a known name: no timing hint
            return None
        if check_password(password, user.password) and self.user_can_authenticate(user):
            return user
        return None
