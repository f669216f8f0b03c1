"""The DB's own settings file (balsam.dbsettings): defaults, umask parsing, one-line errors."""

import os

import pytest

from balsam import dbsettings
from balsam.exceptions import ConfigError


def test_a_db_without_the_file_has_the_defaults(tmp_path):
    assert dbsettings.read(tmp_path) == {"group": None, "umask": None, "dbserver": False}
    assert dbsettings.apply_umask(tmp_path) is None


def test_update_merges_and_keeps_the_file_from_the_world(tmp_path):
    dbsettings.update(tmp_path, umask="0007")
    dbsettings.update(tmp_path, group="g")
    assert dbsettings.read(tmp_path) == {"group": "g", "umask": "0007", "dbserver": False}
    assert os.stat(dbsettings.settings_file(tmp_path)).st_mode & 0o007 == 0


def test_apply_umask_sets_the_process_umask(tmp_path):
    dbsettings.update(tmp_path, umask="0027")
    old = os.umask(0o022)
    try:
        assert dbsettings.apply_umask(tmp_path) == 0o027
        assert os.umask(0o022) == 0o027
    finally:
        os.umask(old)


@pytest.mark.parametrize("text, fragment", [('{"umask": "rwx"}', "not an octal umask"),
                                            ('{"umask": "1777"}', "not an octal umask"),
                                            ('{"colour": 1}', "unknown setting(s) colour"),
                                            ("[1]", "must hold a JSON object"),
                                            ("{", "damaged")])
def test_bad_files_are_one_line(tmp_path, text, fragment):
    dbsettings.settings_file(tmp_path).write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        dbsettings.read(tmp_path)
