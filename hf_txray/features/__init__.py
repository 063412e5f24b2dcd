"""Features of every token position: subword token, whole word, spaCy tags, user labels.

- :mod:`.registry`: feature types as registered records (:class:`FeatureType`, :func:`register_feature`), their
  kinds and reading order, and the parsing of ``features=``;
- :mod:`.annotation`: spaCy words and tags of a corpus, cached on disk;
- :mod:`.alignment`: values of token positions: vocabularies, alignment of subword tokens to words and user spans.

User features are callables ``fn(text) -> [(start, end, label), ...]`` labelling character spans.
"""

from .alignment import (
    BlankPieces,
    TokenVocabulary,
    Vocabulary,
    USER_FEATURE_SAMPLE,
    align_to_spans,
    check_user_features,
    first_visible_char,
    first_visible_chars,
    user_feature_labels,
    visible_spans,
    with_stripped_marks,
)
from .annotation import (DEFAULT_SPACY_MODEL, WORD_END, WORD_START, WordAnnotator, annotate_dataset, cache_dir,
                         dataset_holds_markup, markup_strings, tag_column)
from .registry import (BUILTIN_FEATURE_TYPES, BUILTIN_FEATURES, TAG_FEATURES, USER_FEATURE_ORDER, FeatureType,
                       UserFeature, check_feature_kinds, check_feature_orders, code_fingerprint, default_feature_type,
                       display_order, feature_type_of, fingerprints_differ, get_feature_type, is_tag_feature,
                       needs_words, parse_features, reading_order, recorded_fingerprint, register_feature,
                       registered_features, tag_features, text_features, unregister_feature)

__all__ = [
    "BlankPieces", "TokenVocabulary", "Vocabulary", "USER_FEATURE_SAMPLE", "align_to_spans", "check_user_features",
    "first_visible_char", "first_visible_chars", "user_feature_labels", "visible_spans",
    "with_stripped_marks",
    "DEFAULT_SPACY_MODEL", "WORD_END", "WORD_START", "WordAnnotator", "annotate_dataset", "cache_dir",
    "dataset_holds_markup",
    "markup_strings",
    "tag_column",
    "BUILTIN_FEATURE_TYPES", "BUILTIN_FEATURES", "TAG_FEATURES", "USER_FEATURE_ORDER", "FeatureType", "UserFeature",
    "check_feature_kinds", "check_feature_orders", "code_fingerprint", "fingerprints_differ", "recorded_fingerprint",
    "default_feature_type", "display_order", "feature_type_of", "get_feature_type", "is_tag_feature", "needs_words",
    "parse_features", "reading_order", "register_feature", "registered_features", "tag_features", "text_features",
    "unregister_feature",
]
