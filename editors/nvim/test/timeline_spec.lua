-- The timeline: the recorded history, events appended live by another
-- process, streamed text while a turn runs, :Exo cancel, and following
-- on after the daemon goes away.

local h = require('helpers')
local scripts = require('scripts')

test('the timeline shows the recorded events', function()
  h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  local tl = h.open_timeline()
  h.eq(vim.api.nvim_buf_get_name(tl.buf), 'exo://coder/work')
  h.eq(vim.bo[tl.buf].filetype, 'exo')
  for _, text in ipairs({
    'created Work (work)',
    'session started',
    'snapshot turn_start',
    'user: one',
    'assistant: Writing notes.',
    'tool write_file call_1_1 {',
    'approval write_file call_1_1: allowed',
    'result call_1_1 ok:',
    'assistant: Wrote notes.txt.',
    'snapshot turn_end',
    'turn ended: completed',
    'session ended (closed)',
  }) do
    h.ok(h.find_line(tl, text), 'no line with ' .. text .. '\n' .. h.dump(tl))
  end
  -- Lines map back to their events.
  local line = h.find_line(tl, 'user: one')
  local id = tl.event_at_line[line]
  h.eq(tl.events[tl.index[id]].kind, 'message')
  h.ok(not vim.bo[tl.buf].modifiable, 'the timeline is read-only')
end)

test('an event appended by another process appears live', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  local tl = h.open_timeline()
  -- Latency from the moment `exo conversation append` (a separate process,
  -- going through the daemon the plugin started) exits, and from the
  -- moment it starts, to the moment the event's line is in the buffer.
  local after_exit, after_start = {}, {}
  for sample = 1, 7 do
    local text = ('live from another process, sample %d'):format(sample)
    local started = vim.uv.hrtime()
    local exited, appended
    vim.system({ h.exo_bin, '--root', fx.root, '--json', 'conversation', 'append', 'coder', 'work' }, {
      text = true,
      stdin = vim.json.encode({ kind = 'message', role = 'user', content = text }) .. '\n',
    }, function(result)
      exited = vim.uv.hrtime()
      appended = result
    end)
    h.wait_for('exo conversation append to exit', function()
      return appended
    end)
    h.eq(appended.code, 0, appended.stderr)
    local id = vim.json.decode(appended.stdout).events[1].id
    h.wait_line(tl, 'user: ' .. text)
    local shown = tl.rendered_at[id]
    h.ok(shown, 'the event was rendered')
    table.insert(after_exit, (shown - exited) / 1e6)
    table.insert(after_start, (shown - started) / 1e6)
  end
  table.sort(after_exit)
  table.sort(after_start)
  local function figures(samples)
    return ('median %.1f ms (min %.1f, max %.1f)'):format(samples[4], samples[1], samples[#samples])
  end
  io.stdout:write(('latency: live event in timeline, after `exo conversation append` returned: %s\n'):format(figures(after_exit)))
  io.stdout:write(('latency: live event in timeline, after `exo conversation append` started: %s\n'):format(figures(after_start)))
end)

test('a running turn streams its text into the timeline, and :Exo cancel stops it', function()
  h.fixture({ script = scripts.slow })
  local tl = h.open_timeline()
  local result
  require('exo').send({ text = 'take your time' }, function(err, res)
    result = { err = err, res = res }
  end)
  -- The text streams into the tail before the message is recorded.
  h.wait_line(tl, 'assistant: Thinking it over')
  local line = h.find_line(tl, 'assistant: Thinking it over')
  h.ok(h.lines(tl)[line]:find('▍', 1, true), 'the streamed text is marked as streaming\n' .. h.dump(tl))
  h.eq(tl.event_at_line[line], nil, 'streamed text is not an event yet')
  vim.cmd('Exo cancel')
  h.wait_for('the turn to end', function()
    return result
  end)
  h.eq(result.err, nil)
  h.eq(result.res.status, 'cancelled')
  h.wait_line(tl, 'turn ended: cancelled')
  -- The text streamed so far is kept in the recorded message; the tail is
  -- empty again.
  local recorded = h.find_line(tl, 'assistant: Thinking it over')
  h.ok(tl.event_at_line[recorded], 'the kept text is a recorded message\n' .. h.dump(tl))
  h.ok(not table.concat(h.lines(tl), '\n'):find('▍', 1, true), 'nothing streams any more\n' .. h.dump(tl))
end)

test('the timeline follows on after the daemon goes away, and a stopped daemon stays stopped until a command', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  local tl = h.open_timeline()
  local client = require('exo.client')
  local first_pid = client.info().daemon.pid
  -- Another process stops the daemon this editor started.
  h.exo(fx, { 'daemon', 'stop' })
  h.wait_line(tl, 'no exo daemon runs for')
  -- Reconnects keep knocking (200 ms, then 400 ms): none starts a daemon.
  vim.wait(1000, function()
    return false
  end, 50)
  h.eq(client.status(), 'disconnected')
  h.eq(#client.info().started, 1, 'no daemon started behind the user\'s back')
  h.exo(fx, { 'daemon', 'status' }, { expect_code = 1 })
  -- A command of the user's starts one, and the timeline follows on.
  h.await('the snapshot', function(done)
    require('exo').snapshot(done)
  end)
  h.wait_for('the plugin to reconnect to a new daemon', function()
    local info = client.info()
    return info.status == 'connected' and info.daemon and info.daemon.pid ~= first_pid and tl.watch
  end, function()
    return vim.inspect(client.info()) .. '\n' .. h.dump(tl)
  end)
  h.exo(fx, { 'conversation', 'append', 'coder', 'work' }, {
    stdin = vim.json.encode({ kind = 'message', role = 'user', content = 'after the restart' }) .. '\n',
  })
  h.wait_line(tl, 'user: after the restart')
  h.eq(#vim.tbl_filter(function(line)
    return line:find('user: one', 1, true) ~= nil
  end, h.lines(tl)), 1, 'nothing is shown twice')
  h.ok(not h.find_line(tl, 'no exo daemon runs'), h.dump(tl))
end)

test('a timeline unloaded (:bdelete) or read again (:edit!) is drawn whole, and follows on', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  local tl = h.open_timeline()
  local count = #h.lines(tl)
  local win = vim.fn.win_findbuf(tl.buf)[1]
  vim.api.nvim_set_current_win(win)
  vim.cmd('edit!')
  h.wait_for('the timeline drawn again', function()
    return #h.lines(tl) == count
  end, function()
    return h.dump(tl)
  end)
  vim.cmd('bdelete')
  h.exo(fx, { 'conversation', 'append', 'coder', 'work' }, {
    stdin = vim.json.encode({ kind = 'message', role = 'user', content = 'while unloaded' }) .. '\n',
  })
  h.wait_for('the event in the mirror', function()
    return tl.events[#tl.events].kind == 'message'
  end)
  vim.cmd('buffer ' .. tl.buf)
  h.wait_line(tl, 'user: while unloaded')
  h.ok(h.find_line(tl, 'user: one'), h.dump(tl))
  h.eq(#h.notified('out of range'), 0)
end)

test('a history of thousands of events loads, and a live event still follows it', function()
  local fx = h.fixture({ script = scripts.two_writes })
  local batch = {}
  for i = 1, 5000 do
    batch[i] = vim.json.encode({ kind = 'message', role = i % 2 == 0 and 'assistant' or 'user', content = ('message %d\nits second line'):format(i) })
  end
  h.exo(fx, { 'conversation', 'append', 'coder', 'work' }, { stdin = table.concat(batch, '\n') .. '\n' })
  local started = vim.uv.hrtime()
  local tl = h.open_timeline()
  local loaded_ms = (vim.uv.hrtime() - started) / 1e6
  h.ok(h.find_line(tl, 'user: message 1'), 'the first message')
  h.ok(h.find_line(tl, 'assistant: message 5000'), 'the last message')
  h.eq(#tl.events, 5001)
  io.stdout:write(('figure: a timeline of 5001 events opened and loaded in %.0f ms\n'):format(loaded_ms))
  h.exo(fx, { 'conversation', 'append', 'coder', 'work' }, { stdin = vim.json.encode({ kind = 'message', role = 'user', content = 'one more' }) .. '\n' })
  h.wait_line(tl, 'user: one more')
end)
