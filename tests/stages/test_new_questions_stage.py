"""The new_questions stage's input checks: a path outside data/questions/ is a params
error, a bad question file stops the stage in one line before any model is loaded.
(Its reads and params, and its numbers against `valuesim.ask`, are checked in
tests/integration/test_dvc_declarations.py; the report section in tests/report.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from valuesim.config import Params, load_params
from valuesim.errors import ConfigError
from valuesim.stages import new_questions
from valuesim.survey.new_questions import QuestionFileError


@pytest.mark.parametrize("path", ["my_items.yaml", "/abs/data/questions/x.yaml",
                                  "data/questions/../x.yaml", "data/questions/x.txt"])
def test_a_question_file_outside_data_questions_is_a_one_line_params_error(
    tmp_path: Path, path: str
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"new_questions": [path]}}))
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "params.yaml")
    message = str(err.value)
    assert "data.new_questions" in message
    assert f"{path} must be a .yaml file under data/questions/" in message
    assert "\n" not in message


def test_a_bad_question_file_stops_the_stage_before_any_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/questions").mkdir(parents=True)
    (tmp_path / "data/questions/bad.yaml").write_text(yaml.safe_dump({"items": [
        {"id": "X1", "text": "?", "answers": [{"code": 1, "label": "yes"}]}]}))
    base = {"questions": str(root / "data/questions/wvs7.yaml")}
    # the model would be a server nobody runs: the stage must stop before reaching it
    models = {"models": {"m": {"provider": "openai", "model": "x", "base_url": "http://127.0.0.1:9"}},
              "simulate": {"models": ["m"], "methods": ["generic"]}}
    for files, message in ((["data/questions/bad.yaml"], "bad.yaml: item X1: answers"),
                           (["data/questions/none.yaml"], "none.yaml not found")):
        params = Params.model_validate({"data": {**base, "new_questions": files}, **models})
        with pytest.raises(QuestionFileError) as err:
            new_questions.run(params)
        assert message in str(err.value)
        assert "\n" not in str(err.value)
        assert not (tmp_path / "data/new_questions").exists()
