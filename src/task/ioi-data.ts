/**
 * The IOI word lists and templates of the Python reference `ioi_dataset.py` (ARENA / ACDC lineage),
 * as recorded in shared/ioi/ioi-data.json. Order matters: every draw indexes into these lists.
 */

/** 109 first names; each is one GPT-2 token with a leading space. */
export const NAMES: readonly string[] = [
  'Aaron', 'Adam', 'Alan', 'Alex', 'Alice', 'Amy', 'Anderson', 'Andre',
  'Andrew', 'Andy', 'Anna', 'Anthony', 'Arthur', 'Austin', 'Blake', 'Brandon',
  'Brian', 'Carter', 'Charles', 'Charlie', 'Christian', 'Christopher', 'Clark', 'Cole',
  'Collins', 'Connor', 'Crew', 'Crystal', 'Daniel', 'David', 'Dean', 'Edward',
  'Elizabeth', 'Emily', 'Eric', 'Eva', 'Ford', 'Frank', 'George', 'Georgia',
  'Graham', 'Grant', 'Henry', 'Ian', 'Jack', 'Jacob', 'Jake', 'James',
  'Jamie', 'Jane', 'Jason', 'Jay', 'Jennifer', 'Jeremy', 'Jessica', 'John',
  'Jonathan', 'Jordan', 'Joseph', 'Joshua', 'Justin', 'Kate', 'Kelly', 'Kevin',
  'Kyle', 'Laura', 'Leon', 'Lewis', 'Lisa', 'Louis', 'Luke', 'Madison',
  'Marco', 'Marcus', 'Maria', 'Mark', 'Martin', 'Mary', 'Matthew', 'Max',
  'Michael', 'Michelle', 'Morgan', 'Patrick', 'Paul', 'Peter', 'Prince', 'Rachel',
  'Richard', 'River', 'Robert', 'Roman', 'Rose', 'Ruby', 'Russell', 'Ryan',
  'Sarah', 'Scott', 'Sean', 'Simon', 'Stephen', 'Steven', 'Sullivan', 'Taylor',
  'Thomas', 'Tyler', 'Victoria', 'Warren', 'William',
];

export const PLACES: readonly string[] = [
  'store', 'garden', 'restaurant', 'school', 'hospital', 'office', 'house', 'station',
];

export const OBJECTS: readonly string[] = [
  'ring', 'kiss', 'bone', 'basketball', 'computer', 'necklace', 'drink', 'snack',
];

/** [B] is the subject S, [A] the indirect object IO; every template ends with [A]. */
export const BABA_TEMPLATES: readonly string[] = [
  'Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]',
  'Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]',
  'Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]',
  'Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]',
  'Then, [B] and [A] had a long argument, and afterwards [B] said to [A]',
  'After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]',
  'When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]',
  'When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]',
  'While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]',
  'While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]',
  'After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]',
  'Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]',
  'Then, [B] and [A] had a long argument. Afterwards [B] said to [A]',
  'The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]',
  'Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]',
];

/**
 * The reference makes each ABBA template from its BABA twin: every [B] before the first [A] becomes
 * [A] and that first [A] becomes [B], so the opening clause reads '[A] and [B]' and the rest is kept.
 */
export function toAbba(template: string): string {
  const firstA = template.indexOf('[A]');
  if (firstA < 0) return template;
  const head = template.slice(0, firstA).split('[B]').join('[A]');
  return head + '[B]' + template.slice(firstA + 3);
}

export const ABBA_TEMPLATES: readonly string[] = BABA_TEMPLATES.map(toAbba);
