" Vim syntax file
" Language:    hpprouter routing policy (policies/README.md)
" Files:       *.policy
" Install:     copy (or link) the syntax/ and ftdetect/ folders of
"              policies/editors/vim into ~/.vim (or ~/.config/nvim).
" The word lists are checked against the engine's keyword list by
" tests/unit/test_policy_authoring.c: a word added to the language and not
" here fails the tests.

if exists("b:current_syntax")
  finish
endif

syn case match

" Statements
syn keyword hppStatement include settings tier group hint route scorer

" Condition words
syn keyword hppOperator and or not in has contains any all when
syn keyword hppBoolean true false

" Property keys
syn keyword hppProperty default_output step free_fallback prefer providers max models
syn keyword hppProperty multiplier require output allow_providers deny_providers
syn keyword hppProperty min_context cooldown_fails cooldown cooldown_max health_window sort file step_down

" Condition fields (meta.KEY too)
syn keyword hppField prompt_tokens output_tokens total_tokens cache_read_tokens images
syn keyword hppField budget text_length tools json vision has_budget hints text meta score

" Words some values take: step directions, switches, capabilities
syn keyword hppConstant up down none on off yes no reasoning price latency throughput

" Literals
syn match   hppNumber   "-\=\$\=\<\d\+\(\.\d\+\)\=[kKmM]\=\>"
syn match   hppMoney    "-\=\$\d\+\(\.\d\+\)\=[kKmM]\="
syn region  hppString   start=+"+ skip=+\\.+ end=+"+ end=+$+ oneline
syn region  hppRegex    start=+\(^\|[^A-Za-z0-9_)\]]\)\@<=/+ skip=+\\.+ end=+/[A-Za-z]*+ end=+$+ oneline
syn match   hppCompare  "<=\|>=\|==\|!=\|<\|>\|\~"
syn match   hppComment  "#.*$" contains=hppTodo
syn keyword hppTodo     TODO FIXME XXX contained

hi def link hppStatement Statement
hi def link hppOperator  Keyword
hi def link hppBoolean   Boolean
hi def link hppProperty  Type
hi def link hppField     Identifier
hi def link hppConstant  Constant
hi def link hppNumber    Number
hi def link hppMoney     Number
hi def link hppString    String
hi def link hppRegex     Special
hi def link hppCompare   Operator
hi def link hppComment   Comment
hi def link hppTodo      Todo

let b:current_syntax = "hpp-policy"
