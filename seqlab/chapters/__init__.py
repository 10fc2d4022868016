"""One module per chapter, named by the chapter's id: its presets, experiments,
figures and explorer. The book page ``book/<id>.md`` imports it; nothing in
seqlab imports a chapter module, except one chapter building on an earlier one.
"""

CHAPTERS = ("rnn_gradients", "lstm_gru", "seq2seq", "attention", "transformers", "gpt_prompting")
