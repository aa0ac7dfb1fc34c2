"""domainfm's surrogates as a Presidio anonymizer ``Operator``.

Teams that already run ``presidio-analyzer`` + ``presidio-anonymizer`` can keep their pipeline
and swap ``replace``/``mask`` for domainfm's consistent, format-preserving surrogates::

    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig
    from domainfm.deid import SurrogateGenerator
    from domainfm.deid.presidio_operator import SurrogateOperator

    engine = AnonymizerEngine()
    engine.add_anonymizer(SurrogateOperator)
    generator = SurrogateGenerator.from_env()            # key in $DOMAINFM_VAULT_KEY
    config = OperatorConfig("domainfm_surrogate", {"generator": generator, "scope": "patient:7"})
    engine.anonymize(text, analyzer_results, operators={"DEFAULT": config})

The same (key, scope, entity type, original) always gives the same surrogate, in Presidio or in
``domainfm deid``: a patient's "John Smith" becomes the same fake name in every note. Presidio
entity types (``PERSON``, ``DATE_TIME``, ``PHONE_NUMBER``...) map onto domainfm's canonical
labels (``surrogates.canonical_label``); unknown types keep the original's shape.
"""

from __future__ import annotations

from typing import Any

from presidio_anonymizer.entities import InvalidParamError
from presidio_anonymizer.operators import Operator, OperatorType

from domainfm.deid.surrogates import SurrogateGenerator

class SurrogateOperator(Operator):
    """Presidio operator ``domainfm_surrogate``. Params: ``generator`` (a
    :class:`~domainfm.deid.surrogates.SurrogateGenerator`) and ``scope`` (the patient or document
    the text belongs to, e.g. ``scope_for(doc_id, meta)``; notes of one patient share it)."""

    NAME = "domainfm_surrogate"

    def operate(self, text: str = None, params: dict[str, Any] = None) -> str:
        # the engine sets entity_type; canonical_label maps Presidio's names (PERSON, DATE_TIME...)
        return params["generator"].surrogate(text, str(params.get("entity_type") or "MISC"), params["scope"])

    def validate(self, params: dict[str, Any] = None) -> None:
        params = params or {}
        if not isinstance(params.get("generator"), SurrogateGenerator):
            raise InvalidParamError(f"{self.NAME}: params['generator'] must be a domainfm SurrogateGenerator "
                                    "(e.g. SurrogateGenerator.from_env())")
        scope = params.get("scope")
        if not isinstance(scope, str) or not scope.strip():
            raise InvalidParamError(f"{self.NAME}: params['scope'] must be a non-empty string naming the patient "
                                    "or document, e.g. 'patient:7'")

    def operator_name(self) -> str:
        return self.NAME

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize
