-- :checkhealth exo, the conversation picker, and :Exo's completion.

local h = require('helpers')
local scripts = require('scripts')

test(':checkhealth exo reports exo found and the daemon reachable', function()
  h.fixture({ script = scripts.two_writes })
  vim.cmd('silent checkhealth exo')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  h.ok(text:find('OK exo found: exo ', 1, true), text)
  h.ok(text:find('OK daemon reachable: pid ', 1, true), text)
  h.ok(not text:find('ERROR', 1, true), text)
  -- The tests' stub of vim.ui.select stands for a picker plugin.
  h.ok(text:find('vim%.ui%.select is replaced %(.-helpers%.lua:%d+%)'), text)
  h.ok(text:find('asked in it all the same (long_prompts = "picker")', 1, true), text)
end)

test(':Exo conversations picks the current conversation and opens its timeline', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  h.exo(fx, { 'conversation', 'create', 'coder', 'Other', '--slug', 'other' })
  local labels
  h.on_select = function(items, opts)
    h.eq(opts.kind, 'exo.conversation')
    labels = vim.tbl_map(opts.format_item, items)
    return h.pick(items, opts, '  coder/other  Other')
  end
  vim.cmd('Exo conversations')
  h.wait_for('the other conversation to be current', function()
    local current = require('exo').current
    return current and current.slug == 'other'
  end)
  h.eq(labels, { '  coder/work  Work  ' .. fx.workspace, '  coder/other  Other' })
  local tl = require('exo.timeline').for_buf()
  h.ok(tl, 'the timeline is in the current window')
  h.eq(vim.api.nvim_buf_get_name(tl.buf), 'exo://coder/other')
  h.wait_line(tl, 'created Other (other)')
end)

test(':Exo completes its subcommands, and conversations once listed', function()
  h.fixture({ script = scripts.two_writes })
  local complete = require('exo.commands').complete
  h.eq(complete('re', 'Exo re'), { 'redo', 'rewind' })
  h.eq(complete('', 'Exo! '), require('exo.commands').names())
  h.eq(complete('d', 'Exo diff d'), { 'disk' })
  -- The first completion starts listing conversations; a later one has them.
  complete('', 'Exo open ')
  h.wait_for('the conversations to be listed', function()
    return #complete('', 'Exo open ') > 0
  end)
  h.eq(complete('coder/', 'Exo open coder/'), { 'coder/work' })
end)

test(':edit exo://AGENT/CONVERSATION opens that timeline', function()
  h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  vim.cmd('edit exo://coder/work')
  h.wait_for('the buffer to become a timeline', function()
    return require('exo.timeline').for_buf()
  end)
  local tl = require('exo.timeline').for_buf()
  h.wait_line(tl, 'user: one')
end)
