from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_EOS: _ClassVar[FinishReason]
    FINISH_REASON_MAX_LENGTH: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_MAX_LENGTH: FinishReason

class ModelSpec(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DecodeOptions(_message.Message):
    __slots__ = ("beam_size", "n_best", "max_length", "max_length_ratio", "length_penalty", "return_attention", "replace_unk")
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_BEST_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_RATIO_FIELD_NUMBER: _ClassVar[int]
    LENGTH_PENALTY_FIELD_NUMBER: _ClassVar[int]
    RETURN_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    REPLACE_UNK_FIELD_NUMBER: _ClassVar[int]
    beam_size: int
    n_best: int
    max_length: int
    max_length_ratio: float
    length_penalty: float
    return_attention: bool
    replace_unk: bool
    def __init__(self, beam_size: _Optional[int] = ..., n_best: _Optional[int] = ..., max_length: _Optional[int] = ..., max_length_ratio: _Optional[float] = ..., length_penalty: _Optional[float] = ..., return_attention: _Optional[bool] = ..., replace_unk: _Optional[bool] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("texts", "options", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    options: DecodeOptions
    model: ModelSpec
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[DecodeOptions, _Mapping]] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class TranslateResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TranslationResult]
    model: ModelSpec
    def __init__(self, results: _Optional[_Iterable[_Union[TranslationResult, _Mapping]]] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class TranslationResult(_message.Message):
    __slots__ = ("hypotheses", "source_tokens", "source_unknown_tokens")
    HYPOTHESES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_UNKNOWN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    hypotheses: _containers.RepeatedCompositeFieldContainer[Hypothesis]
    source_tokens: _containers.RepeatedScalarFieldContainer[str]
    source_unknown_tokens: int
    def __init__(self, hypotheses: _Optional[_Iterable[_Union[Hypothesis, _Mapping]]] = ..., source_tokens: _Optional[_Iterable[str]] = ..., source_unknown_tokens: _Optional[int] = ...) -> None: ...

class Hypothesis(_message.Message):
    __slots__ = ("text", "tokens", "token_ids", "token_log_probs", "score", "raw_score", "finish_reason", "attention", "unk_replaced")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LOG_PROBS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    UNK_REPLACED_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[str]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    token_log_probs: _containers.RepeatedScalarFieldContainer[float]
    score: float
    raw_score: float
    finish_reason: FinishReason
    attention: Attention
    unk_replaced: bool
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[_Iterable[str]] = ..., token_ids: _Optional[_Iterable[int]] = ..., token_log_probs: _Optional[_Iterable[float]] = ..., score: _Optional[float] = ..., raw_score: _Optional[float] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., attention: _Optional[_Union[Attention, _Mapping]] = ..., unk_replaced: _Optional[bool] = ...) -> None: ...

class Attention(_message.Message):
    __slots__ = ("rows", "cols", "values", "source_tokens", "target_tokens")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TARGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    values: _containers.RepeatedScalarFieldContainer[float]
    source_tokens: _containers.RepeatedScalarFieldContainer[str]
    target_tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ..., source_tokens: _Optional[_Iterable[str]] = ..., target_tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class TranslateStreamRequest(_message.Message):
    __slots__ = ("text", "options", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    options: DecodeOptions
    model: ModelSpec
    def __init__(self, text: _Optional[str] = ..., options: _Optional[_Union[DecodeOptions, _Mapping]] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class TranslateStreamResponse(_message.Message):
    __slots__ = ("token", "result")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    token: TokenEvent
    result: StreamResult
    def __init__(self, token: _Optional[_Union[TokenEvent, _Mapping]] = ..., result: _Optional[_Union[StreamResult, _Mapping]] = ...) -> None: ...

class TokenEvent(_message.Message):
    __slots__ = ("index", "token_id", "token", "text", "log_prob", "attention", "unk_replaced")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOG_PROB_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    UNK_REPLACED_FIELD_NUMBER: _ClassVar[int]
    index: int
    token_id: int
    token: str
    text: str
    log_prob: float
    attention: _containers.RepeatedScalarFieldContainer[float]
    unk_replaced: bool
    def __init__(self, index: _Optional[int] = ..., token_id: _Optional[int] = ..., token: _Optional[str] = ..., text: _Optional[str] = ..., log_prob: _Optional[float] = ..., attention: _Optional[_Iterable[float]] = ..., unk_replaced: _Optional[bool] = ...) -> None: ...

class StreamResult(_message.Message):
    __slots__ = ("result", "model")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    result: TranslationResult
    model: ModelSpec
    def __init__(self, result: _Optional[_Union[TranslationResult, _Mapping]] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelSpec
    def __init__(self, model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_texts", "max_text_chars", "max_src_tokens", "max_beam", "max_output_len", "max_attention_values")
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_SRC_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_BEAM_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTENTION_VALUES_FIELD_NUMBER: _ClassVar[int]
    max_texts: int
    max_text_chars: int
    max_src_tokens: int
    max_beam: int
    max_output_len: int
    max_attention_values: int
    def __init__(self, max_texts: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_src_tokens: _Optional[int] = ..., max_beam: _Optional[int] = ..., max_output_len: _Optional[int] = ..., max_attention_values: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "cell", "score", "layers", "hidden", "bidirectional", "src_vocab_size", "tgt_vocab_size", "src_tokenizer", "tgt_tokenizer", "execution_provider", "default_max_length", "default_max_length_ratio", "limits", "loaded_models", "created")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    BIDIRECTIONAL_FIELD_NUMBER: _ClassVar[int]
    SRC_VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TGT_VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    SRC_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    TGT_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_LENGTH_RATIO_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    cell: str
    score: str
    layers: int
    hidden: int
    bidirectional: bool
    src_vocab_size: int
    tgt_vocab_size: int
    src_tokenizer: str
    tgt_tokenizer: str
    execution_provider: str
    default_max_length: int
    default_max_length_ratio: float
    limits: Limits
    loaded_models: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    created: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., cell: _Optional[str] = ..., score: _Optional[str] = ..., layers: _Optional[int] = ..., hidden: _Optional[int] = ..., bidirectional: _Optional[bool] = ..., src_vocab_size: _Optional[int] = ..., tgt_vocab_size: _Optional[int] = ..., src_tokenizer: _Optional[str] = ..., tgt_tokenizer: _Optional[str] = ..., execution_provider: _Optional[str] = ..., default_max_length: _Optional[int] = ..., default_max_length_ratio: _Optional[float] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., loaded_models: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ..., created: _Optional[str] = ...) -> None: ...

class ReloadModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RefusedBundle(_message.Message):
    __slots__ = ("path", "reason")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    path: str
    reason: str
    def __init__(self, path: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReloadModelsResponse(_message.Message):
    __slots__ = ("loaded", "unloaded", "refused", "serving")
    LOADED_FIELD_NUMBER: _ClassVar[int]
    UNLOADED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    loaded: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    unloaded: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    refused: _containers.RepeatedCompositeFieldContainer[RefusedBundle]
    serving: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    def __init__(self, loaded: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ..., unloaded: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ..., refused: _Optional[_Iterable[_Union[RefusedBundle, _Mapping]]] = ..., serving: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelSpec
    def __init__(self, model: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("serving",)
    SERVING_FIELD_NUMBER: _ClassVar[int]
    serving: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    def __init__(self, serving: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ...) -> None: ...
