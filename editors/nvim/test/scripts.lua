-- Scripts for the scripted model (spec/models.md, "The scripted model"):
-- which response a call gets depends on the history alone, so a rewound
-- conversation replays its script from that point.

local S = {}

--- Two turns, each writing notes.txt: "first\n", then "second\n".
S.two_writes = {
  chunk_size = 4,
  responses = {
    { text = 'Writing notes.', tool_calls = { { name = 'write_file', arguments = { path = 'notes.txt', content = 'first\n' } } } },
    { text = 'Wrote notes.txt.' },
    { text = 'Changing notes.', tool_calls = { { name = 'write_file', arguments = { path = 'notes.txt', content = 'second\n' } } } },
    { text = 'Changed notes.txt.' },
    { text = 'Nothing more to do.' },
  },
}

--- Two turns, each writing sub/new.txt: "first\n", then "second\n".
S.two_writes_in_sub = {
  responses = {
    { text = 'Writing.', tool_calls = { { name = 'write_file', arguments = { path = 'sub/new.txt', content = 'first\n' } } } },
    { text = 'Wrote sub/new.txt.' },
    { text = 'Changing.', tool_calls = { { name = 'write_file', arguments = { path = 'sub/new.txt', content = 'second\n' } } } },
    { text = 'Changed sub/new.txt.' },
    { text = 'Nothing more to do.' },
  },
}

--- One answer streamed slowly, one character every 40 ms: long enough to
--- see it stream and to cancel it.
S.slow = {
  chunk_size = 1,
  delay_ms = 40,
  responses = {
    { text = string.rep('Thinking it over slowly. ', 40) },
  },
}

--- One turn writing approved.txt, for an agent that asks first.
S.ask_to_write = {
  responses = {
    { text = 'May I write?', tool_calls = { { name = 'write_file', arguments = { path = 'approved.txt', content = 'yes\n' } } } },
    { text = 'Wrote approved.txt.' },
  },
}

--- One turn asking to run a two-line command whose first line looks
--- harmless.
S.ask_to_run = {
  responses = {
    { text = 'May I run it?', tool_calls = { { name = 'shell', arguments = { command = 'echo harmless\nrm -f keep.txt' } } } },
    { text = 'Done.' },
  },
}

return S
